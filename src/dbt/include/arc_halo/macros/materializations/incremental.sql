{#-
    `incremental` for the arc_halo adapter: SQL models build exactly as on dbt-postgres. A Python model
    runs in this process into a staging table (python_models.sql), and then, in the model's one
    transaction, dbt-postgres's own strategy SQL moves the staging rows in: `append`, `merge` and
    `delete+insert` on `unique_key`, `on_schema_change` as for SQL. A first build, a full refresh or a
    view in the way renames the staging table into place, as the `table` materialization does.
    Column types: the YAML's, else the existing table's, else inferred from the frame.
-#}
{% materialization incremental, adapter='arc_halo', supported_languages=['sql', 'python'] %}
    {%- if model.language != 'python' -%}
        {{ return(materialization_incremental_default()) }}
    {%- endif -%}

    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set staging_relation = make_intermediate_relation(target_relation) -%}
    {%- set backup_relation = make_backup_relation(target_relation, existing_relation.type if existing_relation else 'table') -%}
    {%- set full_rebuild = existing_relation is none or existing_relation.is_view or should_full_refresh() -%}
    {%- set on_schema_change = incremental_validate_on_schema_change(config.get('on_schema_change'), default='ignore') -%}
    {{ drop_relation_if_exists(load_cached_relation(staging_relation)) }}
    {{ drop_relation_if_exists(load_cached_relation(backup_relation)) }}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- set created = arc_halo_create_declared_staging(model, staging_relation) -%}
    {% call statement('main', language='python') -%}
        {{ arc_halo_python_script(compiled_code, staging_relation, created, none if full_rebuild else existing_relation) }}
    {%- endcall %}

    {%- if full_rebuild -%}
        {%- if existing_relation is not none -%}
            {{ adapter.rename_relation(existing_relation, backup_relation) }}
        {%- endif -%}
        {{ adapter.rename_relation(staging_relation, target_relation) }}
        {% do create_indexes(target_relation) %}
        {{ drop_relation_if_exists(backup_relation) }}
    {%- else -%}
        {%- set dest_columns = process_schema_changes(on_schema_change, staging_relation, existing_relation) -%}
        {%- if not dest_columns -%}
            {%- set dest_columns = adapter.get_columns_in_relation(existing_relation) -%}
        {%- endif -%}
        {%- set strategy_sql = adapter.get_incremental_strategy_macro(context, config.get('incremental_strategy') or 'default') -%}
        {%- set strategy_arguments = {
            'target_relation': target_relation,
            'temp_relation': staging_relation,
            'unique_key': config.get('unique_key'),
            'dest_columns': dest_columns,
            'incremental_predicates': config.get('predicates', none) or config.get('incremental_predicates', none),
        } -%}
        {% call statement('merge_staging') -%}
            {{ strategy_sql(strategy_arguments) }}
        {%- endcall %}
        {% call statement('drop_staging') -%}
            drop table {{ staging_relation }}
        {%- endcall %}
    {%- endif -%}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {% do apply_grants(target_relation, config.get('grants'), should_revoke=should_revoke(existing_relation, full_rebuild)) %}
    {% do persist_docs(target_relation, model) %}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
