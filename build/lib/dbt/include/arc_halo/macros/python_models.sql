{#- Helpers of the `table` materialization's Python path (materializations/table.sql). -#}

{#- The model's compiled code, plus where the adapter writes the DataFrame that `model()` returns. -#}
{% macro arc_halo_python_script(compiled_code, output_relation) -%}
{{ compiled_code }}

# arc_halo adapter: the staging table (declared column types) that receives the returned DataFrame
dbt_python_output = {{ output_relation | string | tojson }}
{%- endmacro %}

{#- dbt-core refuses `contract: {enforced: true}` on Python models, so the YAML's columns are the
    contract here: every column needs a data_type, and the model must return exactly those columns. -#}
{% macro arc_halo_require_declared_types(model) -%}
    {%- set untyped = [] -%}
    {%- for column in model.columns.values() if not column.data_type -%}
        {%- do untyped.append(column.name) -%}
    {%- endfor -%}
    {%- if not model.columns or untyped -%}
        {{ exceptions.raise_compiler_error(
            "Python model " ~ model.name ~ ": declare every output column with a data_type in its YAML"
            ~ (" (missing for " ~ untyped | join(", ") ~ ")" if untyped else " (none declared)")) }}
    {%- endif -%}
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
