{#-
    List-partitioned by model (see macros/schema_helpers/embedding_partitions.sql): a model's rows are
    bulk-loaded into their own partition, whose indexes are built once after the rows arrive; a search
    within one model touches one partition, a search across models every partition's index. Rows written
    straight into the table land in embeddings_default until the next build splits them out.
    One table holds models of different widths, so `embedding` has no fixed dimension. The table has no
    approximate index of its own: each model's partition gets the HNSW index its width and size call
    for (vector up to 2,000 dimensions, halfvec up to 4,000, binary-quantized bit above; none below a
    few thousand rows), built after the load commits (arc_halo.embeddings.build_index). A partitioned
    index has one definition for every partition, and partitions differ in width.
-#}
{#- The width key without tenant_id is what embeddings_model_width_fkey referenced before it took the
    tenant; once the foreign key is replaced (this model's main statement) the old key has no use. -#}
{{ config(
    partition_by={'type': 'list', 'column': 'model_id', 'default_partition': true},
    table_indexes=[{'columns': ['model_id', 'embedding_type', 'token_text']}],
    post_hook=["alter table {{ ref('models') }} drop constraint if exists models_model_width_key",
               "select count(*) from {{ target.schema }}.split_embedding_partitions()"],
) }}
{{ contract_select() }}
