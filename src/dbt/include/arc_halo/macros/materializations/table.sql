{#-
    `table` for the arc_halo adapter: SQL models build exactly as on dbt-postgres; Python models run in
    this process (dbt.adapters.arc_halo.python_model) and are written into a staging table typed as the
    YAML declares (else as inferred from the returned frame). The staging rows then replace the table's
    in this one transaction, so readers see the old rows or the new, never an empty or half-written table:
    - same columns, types and constraints as before: delete + insert, which keeps the table, its grants
      and the views built on it (a `--select` of the model alone leaves its downstream views in place);
    - first build, a changed shape or --full-refresh: rename-swap the staging table in, as dbt does.
-#}
{% materialization table, adapter='arc_halo', supported_languages=['sql', 'python'] %}
    {%- if model.language != 'python' -%}
        {{ return(materialization_table_default()) }}
    {%- endif -%}

    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set staging_relation = make_intermediate_relation(target_relation) -%}
    {%- set backup_relation = make_backup_relation(target_relation, existing_relation.type if existing_relation else 'table') -%}
    {{ drop_relation_if_exists(load_cached_relation(staging_relation)) }}
    {{ drop_relation_if_exists(load_cached_relation(backup_relation)) }}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- set created = arc_halo_create_declared_staging(model, staging_relation) -%}
    {% call statement('main', language='python') -%}
        {{ arc_halo_python_script(compiled_code, staging_relation, created) }}
    {%- endcall %}

    {%- set keep_table = existing_relation is not none and existing_relation.is_table and not should_full_refresh()
        and arc_halo_same_table_shape(existing_relation, staging_relation) -%}
    {%- if keep_table -%}
        {% call statement('replace_rows') -%}
            delete from {{ target_relation }};
            insert into {{ target_relation }} select * from {{ staging_relation }};
            drop table {{ staging_relation }}
        {%- endcall %}
    {%- else -%}
        {%- if existing_relation is not none -%}
            {{ adapter.rename_relation(existing_relation, backup_relation) }}
        {%- endif -%}
        {{ adapter.rename_relation(staging_relation, target_relation) }}
        {% do create_indexes(target_relation) %}
        {#- CASCADE: views on the old table go with it; dbt rebuilds the selected ones after this model. -#}
        {{ drop_relation_if_exists(backup_relation) }}
    {%- endif -%}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {% do apply_grants(target_relation, config.get('grants'), should_revoke=keep_table) %}
    {% do persist_docs(target_relation, model) %}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
