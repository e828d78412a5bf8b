select checkpoints.checkpoint_id
from {{ ref('model_checkpoints') }} as checkpoints
where checkpoints.model_id = get_latest_checkpoint.model_id
order by checkpoints.created_at desc, checkpoints.step desc, checkpoints.checkpoint_id
limit 1
