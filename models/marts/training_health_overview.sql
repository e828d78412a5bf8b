-- Training sessions with their progress and the health flags of the training_run_health Python model.
with

progress as (
    select * from {{ ref('v_training_progress') }}
),

health as (
    select * from {{ ref('training_run_health') }}
),

final as (
    select
        progress.training_session_id,
        progress.session_name,
        progress.model_name,
        progress.status,
        progress.percent_complete,
        progress.current_step,
        health.last_loss,
        health.smoothed_loss,
        health.min_loss,
        health.loss_slope_per_100_steps,
        coalesce(health.health, 'insufficient_data') as health,
        coalesce(health.is_diverging, false) as is_diverging,
        coalesce(health.is_plateau, false) as is_plateau
    from progress
    left join health on progress.training_session_id = health.training_session_id
)

select * from final
