-- Argument names equal column names, so the argument is qualified with the function's name.
select
    coalesce(sum(public.tensor_shape_elements(tensors.shape)), 0)::bigint as total_parameters,
    coalesce(sum(public.tensor_shape_elements(tensors.shape)) filter (where weights.requires_grad), 0)::bigint
        as trainable_parameters,
    coalesce(sum(public.tensor_shape_elements(tensors.shape)) filter (where not weights.requires_grad), 0)::bigint
        as frozen_parameters
from {{ ref('models').include(database=false) }} as registry
-- Buffers (position ids, masks) are saved with the weights but are not parameters.
left join {{ ref('model_weights').include(database=false) }} as weights
    on registry.model_id = weights.model_id and weights.parameter_kind <> 'buffer'
left join {{ ref('tensor_metadata').include(database=false) }} as tensors on weights.tensor_id = tensors.tensor_id
where registry.model_id = calculate_model_parameters.model_id
group by registry.model_id
