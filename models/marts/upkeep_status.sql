-- Is the scheduled upkeep running, and did its last run work? One row, also before any run (then
-- is_overdue is true): the last run's status, error and what it removed, the last success, failures
-- in the last 24 hours. A monitor alerts on is_overdue or last_run_status = 'failed'.
with

runs as (
    select * from {{ ref('upkeep_runs') }}
),

final as (
    select
        max(started_at) as last_run_at,
        (array_agg(triggered_by order by started_at desc))[1] as last_run_triggered_by,
        (array_agg(status order by started_at desc))[1] as last_run_status,
        (array_agg(error order by started_at desc))[1] as last_run_error,
        (array_agg(kv_cache_rows_removed + activation_cache_rows_removed order by started_at desc))[1]
            as last_run_rows_removed,
        coalesce((array_agg(expired_rows_remaining order by started_at desc))[1], false) as has_expired_backlog,
        max(finished_at) filter (where status = 'succeeded') as last_success_at,
        count(*) filter (where status = 'failed' and started_at > now() - interval '24 hours') as failed_runs_last_24h,
        coalesce(
            sum(kv_cache_rows_removed + activation_cache_rows_removed)
            filter (where started_at > now() - interval '24 hours'),
            0
        ) as rows_removed_last_24h,
        coalesce(max(finished_at) filter (where status = 'succeeded') < now() - interval '1 hour', true) as is_overdue
    from runs
)

select * from final
