-- One row per training session: progress, speed and ETA from the session's own counters, and latest
-- metric values from training_metrics_latest (one row per metric), never from metric history.
with

sessions as (
    select * from {{ ref('training_sessions') }}
),

registry as (
    select
        model_id,
        model_name
    from {{ ref('models') }}
),

latest as (
    select
        training_session_id,
        jsonb_object_agg(metric_name, value) as latest_metrics,
        max(value) filter (where metric_name = 'loss') as latest_loss,
        max(value) filter (where metric_name = 'eval_loss') as latest_eval_loss,
        max(value) filter (where metric_name = 'learning_rate') as latest_learning_rate,
        max(value) filter (where metric_name = 'accuracy') as latest_accuracy,
        max(step) as latest_metric_step,
        max(recorded_at) as last_metric_at
    from {{ ref('training_metrics_latest') }}
    group by training_session_id
),

timed as (
    select
        sessions.*,
        extract(epoch from coalesce(sessions.progress_updated_at, sessions.ended_at, now()) - sessions.started_at)
            as elapsed_seconds
    from sessions
),

final as (
    select
        timed.training_session_id,
        timed.tenant_id,
        timed.session_name,
        timed.model_id,
        registry.model_name,
        timed.status,
        timed.dataset_name,
        timed.current_step,
        timed.total_steps,
        timed.current_epoch,
        timed.total_epochs,
        round(100.0 * timed.current_step / nullif(timed.total_steps, 0), 2) as percent_complete,
        timed.started_at,
        timed.progress_updated_at,
        timed.ended_at,
        timed.elapsed_seconds,
        timed.current_step / nullif(timed.elapsed_seconds, 0) as steps_per_second,
        case
            when timed.status = 'running' and timed.total_steps > timed.current_step and timed.current_step > 0
                then make_interval(
                    secs => (timed.total_steps - timed.current_step) * timed.elapsed_seconds / timed.current_step
                )
        end as estimated_time_remaining,
        latest.latest_loss,
        latest.latest_eval_loss,
        latest.latest_learning_rate,
        latest.latest_accuracy,
        latest.latest_metric_step,
        latest.last_metric_at,
        coalesce(latest.latest_metrics, '{}'::jsonb) as latest_metrics
    from timed
    left join registry on timed.model_id = registry.model_id
    left join latest on timed.training_session_id = latest.training_session_id
)

select * from final
