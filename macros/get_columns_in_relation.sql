{#-
    dbt-postgres reads column types from information_schema, which calls arrays 'ARRAY' and extension
    types (pgvector) 'USER-DEFINED'; unit-test fixtures then render `cast(null as ARRAY)` and fail
    (dbt-labs/dbt-postgres#142). Same query as dbt-postgres, with the real type name for those two.
-#}
{% macro postgres__get_columns_in_relation(relation) -%}
    {% call statement('get_columns_in_relation', fetch_result=True) %}
        select
            columns.column_name,
            case
                when columns.data_type in ('ARRAY', 'USER-DEFINED')
                    then format_type(attributes.atttypid, attributes.atttypmod)
                else columns.data_type
            end as data_type,
            columns.character_maximum_length,
            columns.numeric_precision,
            columns.numeric_scale
        from {{ relation.information_schema('columns') }} as columns
        left join pg_catalog.pg_attribute as attributes
            on attributes.attrelid = to_regclass(quote_ident(columns.table_schema) || '.' || quote_ident(columns.table_name))
            and attributes.attname = columns.column_name
        where columns.table_name = '{{ relation.identifier }}'
        {% if relation.schema %}
            and columns.table_schema = '{{ relation.schema }}'
        {% endif %}
        order by columns.ordinal_position
    {% endcall %}
    {% set table = load_result('get_columns_in_relation').table %}
    {{ return(sql_convert_columns_in_relation(table)) }}
{%- endmacro %}
