-- Parameters per model, layer and parameter kind; layer columns are empty for model-level parameters.
with

weights as (
    select * from {{ ref('model_weights') }}
),

tensors as (
    select
        tensor_id,
        element_count,
        byte_size,
        dtype
    from {{ ref('tensor_metadata') }}
),

layers as (
    select
        layer_id,
        layer_index,
        layer_type
    from {{ ref('transformer_layers') }}
),

registry as (
    select
        model_id,
        model_name
    from {{ ref('models') }}
),

final as (
    select
        weights.model_id,
        registry.model_name,
        weights.layer_id,
        layers.layer_index,
        layers.layer_type,
        weights.parameter_kind,
        count(*) as weight_count,
        sum(tensors.element_count) as parameter_count,
        coalesce(sum(tensors.element_count) filter (where weights.requires_grad), 0) as trainable_parameter_count,
        coalesce(sum(tensors.element_count) filter (where not weights.requires_grad), 0) as frozen_parameter_count,
        sum(tensors.byte_size) as byte_size
    from weights
    inner join tensors on weights.tensor_id = tensors.tensor_id
    inner join registry on weights.model_id = registry.model_id
    left join layers on weights.layer_id = layers.layer_id
    group by
        weights.model_id, registry.model_name, weights.layer_id, layers.layer_index, layers.layer_type,
        weights.parameter_kind
)

select * from final
