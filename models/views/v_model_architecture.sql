-- One row per layer of each model (one row with empty layer columns for a model without layers),
-- with head and weight counts per layer and parameter counts computed from tensor shapes.
with

registry as (
    select * from {{ ref('models') }}
),

layers as (
    select * from {{ ref('transformer_layers') }}
),

heads as (
    select
        layer_id,
        count(*) as head_count,
        count(*) filter (where is_pruned) as pruned_head_count
    from {{ ref('attention_heads') }}
    group by layer_id
),

weights as (
    select
        weights.model_id,
        weights.layer_id,
        tensors.element_count,
        weights.requires_grad
    from {{ ref('model_weights') }} as weights
    inner join {{ ref('tensor_metadata') }} as tensors on weights.tensor_id = tensors.tensor_id
),

layer_weights as (
    select
        layer_id,
        count(*) as weight_count,
        sum(element_count) as layer_parameters
    from weights
    where layer_id is not null
    group by layer_id
),

model_weights as (
    select
        model_id,
        count(*) as model_weight_count,
        sum(element_count) as model_total_parameters,
        sum(element_count) filter (where requires_grad) as model_trainable_parameters
    from weights
    group by model_id
),

final as (
    select
        registry.model_id,
        registry.tenant_id,
        registry.model_name,
        registry.version,
        registry.architecture,
        registry.model_type,
        registry.status,
        registry.vocab_size,
        registry.hidden_size,
        registry.num_layers,
        registry.num_attention_heads,
        registry.intermediate_size,
        registry.max_sequence_length,
        layers.layer_id,
        layers.layer_index,
        layers.layer_type,
        layers.hidden_size as layer_hidden_size,
        layers.intermediate_size as layer_intermediate_size,
        layers.activation,
        layers.normalization,
        coalesce(heads.head_count, 0) as head_count,
        coalesce(heads.pruned_head_count, 0) as pruned_head_count,
        coalesce(layer_weights.weight_count, 0) as weight_count,
        coalesce(layer_weights.layer_parameters, 0) as layer_parameters,
        coalesce(model_weights.model_weight_count, 0) as model_weight_count,
        coalesce(model_weights.model_total_parameters, 0) as model_total_parameters,
        coalesce(model_weights.model_trainable_parameters, 0) as model_trainable_parameters
    from registry
    left join layers on registry.model_id = layers.model_id
    left join heads on layers.layer_id = heads.layer_id
    left join layer_weights on layers.layer_id = layer_weights.layer_id
    left join model_weights on registry.model_id = model_weights.model_id
)

-- Ordered so the seed's query reads the architecture top to bottom.
select * from final
order by model_name asc, layer_index asc
