-- Relations are named without the database: a function body is stored as text, and must keep
-- working in copies of this database (Neon branches, template copies, the psql schema file).
select checkpoints.checkpoint_id
from {{ ref('model_checkpoints').include(database=false) }} as checkpoints
where checkpoints.model_id = get_latest_checkpoint.model_id
order by checkpoints.created_at desc, checkpoints.step desc, checkpoints.checkpoint_id
limit 1
