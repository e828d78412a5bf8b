-- One row per cognitive fusion reactor: its models and weights, operation counts, success rate,
-- latency, and the latest value of each reactor metric.
with

reactors as (
    select * from {{ ref('cognitive_fusion_reactors') }}
),

members as (
    select
        reactor_id,
        count(*) as model_count,
        count(*) filter (where is_active) as active_model_count,
        coalesce(sum(weight) filter (where is_active), 0) as active_weight_total
    from {{ ref('reactor_models') }}
    group by reactor_id
),

operations as (
    select
        reactor_id,
        count(*) as operation_count,
        count(*) filter (where status = 'completed') as completed_operations,
        count(*) filter (where status = 'failed') as failed_operations,
        count(*) filter (where status in ('pending', 'running')) as open_operations,
        avg(latency_ms) filter (where status = 'completed') as avg_latency_ms,
        percentile_cont(0.95) within group (order by latency_ms) filter (where status = 'completed')
            as p95_latency_ms,
        max(started_at) as last_operation_at
    from {{ ref('fusion_operations') }}
    group by reactor_id
),

latest_metrics as (
    select
        reactor_id,
        jsonb_object_agg(metric_name, value) as latest_metrics
    from (
        select distinct on (reactor_id, metric_name)
            reactor_id,
            metric_name,
            value
        from {{ ref('reactor_metrics') }}
        order by reactor_id asc, metric_name asc, recorded_at desc
    ) as newest
    group by reactor_id
),

final as (
    select
        reactors.reactor_id,
        reactors.tenant_id,
        reactors.reactor_name,
        reactors.fusion_strategy,
        reactors.status,
        coalesce(members.model_count, 0) as model_count,
        coalesce(members.active_model_count, 0) as active_model_count,
        coalesce(members.active_weight_total, 0) as active_weight_total,
        coalesce(operations.operation_count, 0) as operation_count,
        coalesce(operations.completed_operations, 0) as completed_operations,
        coalesce(operations.failed_operations, 0) as failed_operations,
        coalesce(operations.open_operations, 0) as open_operations,
        round(
            operations.completed_operations::numeric
            / nullif(operations.completed_operations + operations.failed_operations, 0),
            4
        ) as success_rate,
        operations.avg_latency_ms,
        operations.p95_latency_ms,
        operations.last_operation_at,
        coalesce(latest_metrics.latest_metrics, '{}'::jsonb) as latest_metrics,
        reactors.updated_at
    from reactors
    left join members on reactors.reactor_id = members.reactor_id
    left join operations on reactors.reactor_id = operations.reactor_id
    left join latest_metrics on reactors.reactor_id = latest_metrics.reactor_id
)

select * from final
