{#- Project hook, not part of the adapter's materialization: it converges databases built from this
    project's earlier contracts (pre_hook of gradient_checkpoints, model_checkpoints, kv_cache). -#}

{% macro drop_index_lacking(index_name, column_name) -%}
    {#- Pre-hook for an index whose definition gained a column (tenant_id): a database built earlier holds
        the index under the same name without it, which `create index if not exists` would keep. Dropped
        here, the materialization re-creates it in the same transaction. -#}
do $arc_halo_converge$
begin
    if exists (select from pg_indexes where schemaname = {{ dbt.string_literal(this.schema) }}
               and indexname = {{ dbt.string_literal(index_name) }}
               and indexdef not like {{ dbt.string_literal('%' ~ column_name ~ '%') }}) then
        drop index {{ this.schema }}.{{ index_name }};
    end if;
end
$arc_halo_converge$
{%- endmacro %}
