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
    -- Lateral: a filter on the sessions (status = 'running') applies first, and each session's
    -- latest values are an index lookup on training_metrics_latest's primary key.
    left join lateral (
        select
            jsonb_object_agg(latest_values.metric_name, latest_values.value) as latest_metrics,
            max(latest_values.value) filter (where latest_values.metric_name = 'loss') as latest_loss,
            max(latest_values.value) filter (where latest_values.metric_name = 'eval_loss') as latest_eval_loss,
            max(latest_values.value) filter (where latest_values.metric_name = 'learning_rate') as latest_learning_rate,
            max(latest_values.value) filter (where latest_values.metric_name = 'accuracy') as latest_accuracy,
            max(latest_values.step) as latest_metric_step,
            max(latest_values.recorded_at) as last_metric_at
        from {{ ref('training_metrics_latest') }} as latest_values
        where latest_values.training_session_id = timed.training_session_id
    ) as latest on true
)

select * from final
