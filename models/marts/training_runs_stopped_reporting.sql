-- Training runs still marked running that have stopped reporting: no progress update and no metric
-- for longer than var('training_stale_after_minutes') (30 by default). A crashed job leaves its run
-- 'running' forever; this names them (a freshness check per run, which dbt's source freshness
-- cannot do). `dbt test --select training_runs_stopped_reporting` warns while any are listed.
with

running as (
    select
        training_session_id,
        session_name,
        model_id,
        started_at,
        progress_updated_at,
        current_step
    from {{ ref('training_sessions') }}
    where status = 'running'
),

last_metrics as (
    select
        training_session_id,
        max(recorded_at) as last_metric_at
    from {{ ref('training_metrics_latest') }}
    group by training_session_id
),

final as (
    select
        running.training_session_id,
        running.session_name,
        running.model_id,
        running.current_step,
        last_metrics.last_metric_at,
        greatest(running.progress_updated_at, last_metrics.last_metric_at, running.started_at) as last_reported_at,
        round(extract(epoch from now() - greatest(
            running.progress_updated_at, last_metrics.last_metric_at, running.started_at
        )) / 60, 1) as minutes_silent
    from running
    left join last_metrics on running.training_session_id = last_metrics.training_session_id
    where
        greatest(running.progress_updated_at, last_metrics.last_metric_at, running.started_at)
        < now() - make_interval(mins => {{ var('training_stale_after_minutes', 30) }})
)

select * from final
