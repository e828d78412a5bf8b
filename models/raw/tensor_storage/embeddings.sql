{#-
    List-partitioned by model (see macros/schema_helpers/embedding_partitions.sql): a model's rows are
    bulk-loaded into their own partition, whose indexes are built once after the rows arrive; a search
    within one model touches one partition, a search across models every partition's index. Rows written
    straight into the table land in embeddings_default until the next build splits them out.
    One table holds models of different widths, so `embedding` has no fixed dimension. Each width
    listed in var('embedding_index_widths') gets an HNSW index over an expression cast to that width,
    restricted to rows of that width; a query for one width uses it when it repeats the expression
    and the predicate (see analyses/nearest_embeddings.sql). Widths over 2,000 (pgvector's limit for
    vector HNSW) are indexed as halfvec, up to its limit of 4,000.
-#}
{%- set hnsw_indexes = [] -%}
{%- for width in var('embedding_index_widths') -%}
    {%- if width > 4000 -%}
        {{ exceptions.raise_compiler_error("embedding_index_widths: " ~ width ~ " exceeds pgvector's 4,000-dimension HNSW limit (halfvec); leave it unindexed or reduce it") }}
    {%- endif -%}
    {%- set vector_type = 'vector' if width <= 2000 else 'halfvec' -%}
    {%- do hnsw_indexes.append({
        'name': 'embeddings_hnsw_cosine_' ~ width,
        'using': 'hnsw',
        'columns': ['(embedding::' ~ vector_type ~ '(' ~ width ~ ')) ' ~ vector_type ~ '_cosine_ops'],
        'where': 'dimensions = ' ~ width,
        'with': {'m': 16, 'ef_construction': 64},
    }) -%}
{%- endfor -%}
{#- The width key without tenant_id is what embeddings_model_width_fkey referenced before it took the
    tenant; once the foreign key is replaced (this model's main statement) the old key has no use. -#}
{{ config(
    partition_by={'type': 'list', 'column': 'model_id', 'default_partition': true},
    table_indexes=hnsw_indexes + [{'columns': ['model_id', 'embedding_type', 'token_text']}],
    post_hook=["alter table {{ ref('models') }} drop constraint if exists models_model_width_key",
               "select count(*) from {{ target.schema }}.split_embedding_partitions()"],
) }}
{{ contract_select() }}
