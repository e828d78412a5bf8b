-- Which 10 token embeddings of gpt-fusion-1 are nearest (cosine) to token 42's?
-- Repeats the expression of the HNSW index a model's partition gets once `arc-halo model index` has
-- built it (embedding::vector(<width>) for widths up to 2,000), so the planner can use it instead of
-- scanning the partition; a small partition (the sample's 256 tokens) has no index and is read exactly.
-- Through the index, the filters apply to its candidates (hnsw.ef_search, 40 by default); with very
-- selective filters, `set hnsw.iterative_scan = relaxed_order` (pgvector 0.8) keeps fetching until 10 match.
with probe as (
    select
        embeddings.model_id,
        embeddings.embedding::vector(384) as query_vector
    from {{ ref('embeddings') }} as embeddings
    inner join {{ ref('models') }} as registry on embeddings.model_id = registry.model_id
    where
        registry.model_name = 'gpt-fusion-1'
        and embeddings.embedding_type = 'token'
        and embeddings.embedding_index = 42
)

select
    candidates.embedding_index,
    candidates.token_text,
    candidates.embedding::vector(384) <=> probe.query_vector as cosine_distance
from {{ ref('embeddings') }} as candidates
cross join probe
where
    candidates.dimensions = 384
    and candidates.model_id = probe.model_id
    and candidates.embedding_type = 'token'
order by candidates.embedding::vector(384) <=> probe.query_vector
limit 10
