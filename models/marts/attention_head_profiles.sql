-- Per model, layer and head: attention statistics averaged over inference sessions (from the
-- attention_head_stats Python model), for finding local, broad and redundant heads.
with

stats as (
    select * from {{ ref('attention_head_stats') }}
),

layers as (
    select
        layer_id,
        model_id,
        layer_index
    from {{ ref('transformer_layers') }}
),

final as (
    select
        layers.model_id,
        registry.model_name,
        layers.layer_index,
        stats.head_index,
        count(*) as session_count,
        sum(stats.pattern_count) as pattern_count,
        avg(stats.mean_entropy) as mean_entropy,
        avg(stats.normalized_entropy) as normalized_entropy,
        avg(stats.sparsity) as sparsity,
        avg(stats.mean_attention_distance) as mean_attention_distance,
        avg(stats.local_attention_share) as local_attention_share,
        mode() within group (order by stats.attention_style) as attention_style
    from stats
    inner join layers on stats.layer_id = layers.layer_id
    inner join {{ ref('models') }} as registry on layers.model_id = registry.model_id
    group by layers.model_id, registry.model_name, layers.layer_index, stats.head_index
)

select * from final
