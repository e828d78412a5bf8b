{#- Helpers of the `table` and `incremental` materializations' Python path (materializations/). -#}

{#- The model's compiled code, plus where the adapter writes the DataFrame that `model()` returns:
    `output_relation` (already created with the declared types when `created`, else the adapter creates
    it, typed from the YAML, then `existing_relation`'s columns, then the frame). -#}
{% macro arc_halo_python_script(compiled_code, output_relation, created, existing_relation=none) -%}
{{ compiled_code }}

# arc_halo adapter: the staging table that receives the returned DataFrame
dbt_python_output = {{ output_relation | string | tojson }}
dbt_python_output_created = {{ 'True' if created else 'False' }}
dbt_python_existing = {{ existing_relation.include(database=false) | string | tojson if existing_relation else 'None' }}
{%- endmacro %}

{#- dbt-core refuses `contract: {enforced: true}` on Python models, so when the YAML gives every column a
    data_type those columns are the contract: the staging table is created with them (and their
    constraints) here, and the model must return exactly those columns. Otherwise the adapter types the
    columns itself (python_model.column_types). -#}
{% macro arc_halo_create_declared_staging(model, staging_relation) -%}
    {%- set untyped = model.columns.values() | rejectattr('data_type') | list -%}
    {%- if not model.columns or untyped -%}
        {{ return(false) }}
    {%- endif -%}
    {% call statement('create_staging') -%}
        create table {{ staging_relation }} {{ get_table_columns_and_constraints() }}
    {%- endcall %}
    {{ return(true) }}
{%- endmacro %}

{#- True when two tables have the same columns, types, NOT NULLs and constraints, in the same order. -#}
{% macro arc_halo_same_table_shape(relation_a, relation_b) -%}
    {%- set query -%}
        with shapes as (
            select
                relation.name,
                (
                    select string_agg(
                        attname || ' ' || format_type(atttypid, atttypmod) || case when attnotnull then ' not null' else '' end,
                        ', ' order by attnum
                    )
                    from pg_catalog.pg_attribute
                    where attrelid = relation.oid and attnum > 0 and not attisdropped
                ) as columns,
                (
                    select string_agg(pg_get_constraintdef(oid), ', ' order by pg_get_constraintdef(oid))
                    from pg_catalog.pg_constraint
                    where conrelid = relation.oid
                ) as constraints
            from (values
                ('a', to_regclass('{{ relation_a.include(database=false) }}')),
                ('b', to_regclass('{{ relation_b.include(database=false) }}'))
            ) as relation (name, oid)
        )
        select
            a.columns = b.columns and a.constraints is not distinct from b.constraints as same_shape
        from shapes as a
        cross join shapes as b
        where a.name = 'a' and b.name = 'b'
    {%- endset -%}
    {{ return(run_query(query).columns[0].values()[0]) }}
{%- endmacro %}
