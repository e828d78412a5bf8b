{#-
    The DDL a contract asks for: a column, the table (optionally partitioned, with storage options) and an
    index. The first build runs it; evolve.sql runs it on a temporary copy to compare, and for new indexes.
-#}

{% macro operational_column_ddl(column) -%}
    {{ adapter.quote(column.name) }} {{ column.data_type }}
    {%- if column.default is not none %} default {{ column.default }}{% endif %}
    {%- if column.not_null %} not null{% endif %}
{%- endmacro %}


{% macro operational_create_table_ddl(relation, columns, constraints, partition_by=none, table_options=none) -%}
    create table {{ relation }} (
    {%- for column in columns %}
        {{ operational_column_ddl(column) }}{% if not loop.last or constraints %},{% endif %}
    {%- endfor %}
    {%- for constraint in constraints %}
        constraint {{ constraint.name }} {{ constraint.body }}{% if not loop.last %},{% endif %}
    {%- endfor %}
    )
    {%- if partition_by %} partition by {{ partition_by.type or 'range' }} ({{ partition_by.column }}){% endif %}
    {%- if table_options %} with ({% for key, value in table_options.items() %}{{ key }} = {{ value }}{% if not loop.last %}, {% endif %}{% endfor %}){% endif %}
{%- endmacro %}


{% macro operational_index_ddl(relation, index) -%}
    create {% if index.unique %}unique {% endif %}index if not exists {{ index.name }}
    on {{ relation }} using {{ index.using }} ({{ index.columns | join(', ') }})
    {%- if index.include %} include ({{ index.include | join(', ') }}){% endif %}
    {%- if index.with %} with ({% for key, value in index.with.items() %}{{ key }} = {{ value }}{% if not loop.last %}, {% endif %}{% endfor %}){% endif %}
    {%- if index.where %} where {{ index.where }}{% endif %}
{%- endmacro %}
