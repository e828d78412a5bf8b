-- Each reactor's models with their fusion weights and the share of the reactor's operations each
-- model contributed to.
with

members as (
    select * from {{ ref('reactor_models') }}
),

operations as (
    select
        reactor_id,
        contributing_model_ids
    from {{ ref('fusion_operations') }}
),

reactor_totals as (
    select
        reactor_id,
        count(*) as operation_count
    from operations
    group by reactor_id
),

contributions as (
    select
        operations.reactor_id,
        contributor.model_id,
        count(*) as contributed_operations
    from operations
    cross join lateral unnest(operations.contributing_model_ids) as contributor (model_id)
    group by operations.reactor_id, contributor.model_id
),

final as (
    select
        members.reactor_model_id,
        members.reactor_id,
        reactors.reactor_name,
        members.model_id,
        registry.model_name,
        members.role,
        members.weight,
        members.priority,
        members.is_active,
        coalesce(contributions.contributed_operations, 0) as contributed_operations,
        coalesce(reactor_totals.operation_count, 0) as reactor_operation_count,
        round(
            coalesce(contributions.contributed_operations, 0)::numeric / nullif(reactor_totals.operation_count, 0), 4
        ) as operation_share
    from members
    inner join {{ ref('cognitive_fusion_reactors') }} as reactors on members.reactor_id = reactors.reactor_id
    inner join {{ ref('models') }} as registry on members.model_id = registry.model_id
    left join contributions
        on members.reactor_id = contributions.reactor_id and members.model_id = contributions.model_id
    left join reactor_totals on members.reactor_id = reactor_totals.reactor_id
)

select * from final
