-- Every checkpoint with its session, loss at the checkpoint, and the session's best checkpoint:
-- the one flagged is_best, or else the one with the lowest loss.
with

checkpoints as (
    select * from {{ ref('model_checkpoints') }}
),

sessions as (
    select
        training_session_id,
        session_name
    from {{ ref('training_sessions') }}
),

scored as (
    select
        checkpoints.*,
        (checkpoints.metrics ->> 'loss')::double precision as loss_at_checkpoint,
        row_number() over (
            partition by checkpoints.training_session_id
            order by
                checkpoints.is_best desc, (checkpoints.metrics ->> 'loss')::double precision asc nulls last,
                checkpoints.step desc
        ) as best_rank,
        row_number() over (
            partition by checkpoints.training_session_id order by checkpoints.step asc
        ) as checkpoint_number
    from checkpoints
),

best as (
    select
        training_session_id,
        checkpoint_id as best_checkpoint_id
    from scored
    where best_rank = 1 and training_session_id is not null
),

final as (
    select
        scored.checkpoint_id,
        scored.model_id,
        scored.training_session_id,
        sessions.session_name,
        scored.checkpoint_number,
        scored.step,
        scored.epoch,
        scored.loss_at_checkpoint,
        scored.metrics,
        scored.size_bytes,
        scored.is_best,
        best.best_checkpoint_id,
        coalesce(scored.checkpoint_id = best.best_checkpoint_id, false) as is_session_best,
        scored.created_at
    from scored
    left join sessions on scored.training_session_id = sessions.training_session_id
    left join best on scored.training_session_id = best.training_session_id
)

select * from final
