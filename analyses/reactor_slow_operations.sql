-- Which fusion operations of active reactors were slower than their reactor's p95, and who contributed?
with thresholds as (
    select
        reactor_id,
        p95_latency_ms
    from {{ ref('v_reactor_status') }}
    where status = 'active'
)

select
    operations.reactor_id,
    operations.input_reference,
    operations.latency_ms,
    thresholds.p95_latency_ms,
    cardinality(operations.contributing_model_ids) as contributing_models
from {{ ref('fusion_operations') }} as operations
inner join thresholds on operations.reactor_id = thresholds.reactor_id
where operations.latency_ms > thresholds.p95_latency_ms
order by operations.latency_ms desc
