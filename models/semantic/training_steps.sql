-- The loss a training run logged at each step, with the steps and seconds since its previous logged
-- step: the facts behind the semantic layer's training loss and throughput (steps per second) per
-- run and model. Steps logged without a loss do not appear.
with

losses as (
    select
        training_session_id,
        step,
        recorded_at,
        value as loss
    from {{ ref('training_metrics') }}
    where metric_name = 'loss'
),

sessions as (
    select
        training_session_id,
        model_id,
        session_name
    from {{ ref('training_sessions') }}
),

final as (
    select
        losses.training_session_id,
        sessions.model_id,
        sessions.session_name,
        losses.step,
        losses.recorded_at,
        losses.loss,
        coalesce(
            losses.step - lag(losses.step) over (partition by losses.training_session_id order by losses.step), 0
        ) as steps_since_previous,
        coalesce(extract(epoch from losses.recorded_at - lag(losses.recorded_at) over (
            partition by losses.training_session_id order by losses.step
        )), 0) as seconds_since_previous
    from losses
    inner join sessions on losses.training_session_id = sessions.training_session_id
)

select * from final
