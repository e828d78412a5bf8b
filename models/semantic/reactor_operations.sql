-- One row per fusion operation a reactor ran: the facts behind the semantic layer's reactor
-- throughput (operations per day) and completed share.
with

operations as (
    select
        fusion_operation_id,
        reactor_id,
        status,
        latency_ms,
        started_at
    from {{ ref('fusion_operations') }}
),

final as (
    select
        fusion_operation_id,
        reactor_id,
        started_at,
        latency_ms,
        status = 'completed' as is_completed
    from operations
)

select * from final
