{#-
    The operational_table contract, read from the model's YAML: columns (type, default, not null), named
    constraints (primary key, unique, foreign key, check) and config(table_indexes). Postgres' own naming
    convention is used where the YAML gives no name, so names stay stable and readable: <table>_pkey,
    <table>_<column>_key, <table>_<column>_fkey, <table>_<column>_check. contract_select() is the SQL
    body every operational model has (the contract as an empty relation).
-#}

{% macro operational_identifier(parts, suffix) -%}
    {#- Postgres truncates identifiers at 63 bytes; keep the suffix and disambiguate with a hash. -#}
    {%- set name = (parts | join('_')) ~ '_' ~ suffix -%}
    {%- if name | length > 63 -%}
        {%- set digest = local_md5(name)[:8] -%}
        {%- set name = name[:(63 - suffix | length - 10)] ~ '_' ~ digest ~ '_' ~ suffix -%}
    {%- endif -%}
    {{- name -}}
{%- endmacro %}


{% macro operational_columns(model_node) -%}
    {#- [{name, data_type, default, not_null}] in contract order. -#}
    {%- set columns = [] -%}
    {%- for column in model_node.columns.values() -%}
        {%- if not column.data_type -%}
            {{ exceptions.raise_compiler_error("column " ~ column.name ~ " of " ~ model_node.name ~ " needs a data_type in its YAML contract") }}
        {%- endif -%}
        {%- set ns = namespace(default=none, not_null=false) -%}
        {%- for constraint in column.constraints -%}
            {%- if constraint.type in ('not_null', 'primary_key') -%}
                {%- set ns.not_null = true -%}
            {%- elif constraint.type == 'custom' -%}
                {%- set expression = constraint.expression | trim -%}
                {%- if expression[:8] | lower == 'default ' -%}
                    {%- set ns.default = expression[8:] | trim -%}
                {%- else -%}
                    {{ exceptions.raise_compiler_error("custom constraint '" ~ expression ~ "' on " ~ model_node.name ~ "." ~ column.name ~ " is not supported: only 'default <expression>'") }}
                {%- endif -%}
            {%- endif -%}
        {%- endfor -%}
        {%- do columns.append({'name': column.name, 'data_type': column.data_type, 'default': ns.default, 'not_null': ns.not_null}) -%}
    {%- endfor -%}
    {{ return(columns) }}
{%- endmacro %}


{% macro operational_constraint(table_name, kind, columns, expression=none, name=none, references=none, to_columns=none) -%}
    {%- set suffixes = {'primary_key': 'pkey', 'unique': 'key', 'foreign_key': 'fkey', 'check': 'check'} -%}
    {%- if kind == 'primary_key' -%}
        {%- set default_name = table_name ~ '_pkey' -%}
        {%- set body = 'primary key (' ~ (columns | join(', ')) ~ ')' -%}
    {%- elif kind == 'unique' -%}
        {%- set default_name = operational_identifier([table_name] + columns, 'key') -%}
        {%- set body = 'unique ' ~ (expression or '') ~ ' (' ~ (columns | join(', ')) ~ ')' -%}
    {%- elif kind == 'foreign_key' -%}
        {%- set default_name = operational_identifier([table_name] + columns, 'fkey') -%}
        {%- if not references -%}
            {{ exceptions.raise_compiler_error("foreign key on " ~ table_name ~ "(" ~ (columns | join(', ')) ~ ") needs to: ref('...') and to_columns") }}
        {%- endif -%}
        {%- set body = 'foreign key (' ~ (columns | join(', ')) ~ ') references ' ~ references ~ ' (' ~ (to_columns | join(', ')) ~ ') ' ~ (expression or '') -%}
    {%- elif kind == 'check' -%}
        {%- set default_name = operational_identifier([table_name] + columns, 'check') -%}
        {%- set body = 'check (' ~ expression ~ ')' -%}
    {%- else -%}
        {{ exceptions.raise_compiler_error("constraint type " ~ kind ~ " on " ~ table_name ~ " is not supported") }}
    {%- endif -%}
    {{ return({'name': name or default_name, 'kind': kind, 'columns': columns, 'body': body | trim,
               'references': references, 'to_columns': to_columns or [], 'expression': expression}) }}
{%- endmacro %}


{% macro operational_constraints(model_node, table_name) -%}
    {#- Every named table constraint the contract declares, column-level and model-level. -#}
    {%- set constraints = [] -%}
    {%- for column in model_node.columns.values() -%}
        {%- for constraint in column.constraints if constraint.type in ('primary_key', 'unique', 'foreign_key', 'check') -%}
            {%- do constraints.append(operational_constraint(table_name, constraint.type, [column.name], constraint.expression, constraint.name, constraint.to, constraint.to_columns)) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- for constraint in model_node.constraints -%}
        {%- if constraint.type != 'primary_key' and not constraint.name -%}
            {{ exceptions.raise_compiler_error("model-level " ~ constraint.type ~ " constraint on " ~ table_name ~ " needs a name") }}
        {%- endif -%}
        {%- do constraints.append(operational_constraint(table_name, constraint.type, constraint.columns, constraint.expression, constraint.name, constraint.to, constraint.to_columns)) -%}
    {%- endfor -%}
    {%- set names = constraints | map(attribute='name') | list -%}
    {%- for name in names if names.count(name) > 1 -%}
        {{ exceptions.raise_compiler_error("constraint name " ~ name ~ " is used twice on " ~ table_name ~ ": give one of them another name in the YAML") }}
    {%- endfor -%}
    {{ return(constraints) }}
{%- endmacro %}


{% macro operational_indexes(table_name) -%}
    {#-
        config(table_indexes=[{columns: [...], using: btree|gin|hnsw|brin, unique, where, with: {..}, include: [..], name}])
        Expression columns are allowed ("(embedding::vector(384)) vector_cosine_ops").
    -#}
    {%- set indexes = [] -%}
    {%- for index in config.get('table_indexes', []) -%}
        {%- if not index.name and modules.re.search('[^a-z0-9_, ]', index.columns | join(', ')) -%}
            {{ exceptions.raise_compiler_error("index on " ~ table_name ~ " over an expression needs a name") }}
        {%- endif -%}
        {%- set name = index.name or operational_identifier([table_name] + index.columns, 'idx') -%}
        {%- do indexes.append({'name': name, 'columns': index.columns, 'using': index.using or 'btree', 'unique': index.unique or false,
                               'where': index.where, 'with': index.with or {}, 'include': index.include or []}) -%}
    {%- endfor -%}
    {{ return(indexes) }}
{%- endmacro %}


{% macro contract_select() -%}
    {#- The SQL body of an operational model: its contract as an empty relation. The table itself is
        built from the YAML by the operational_table materialization; this keeps `dbt show`, --empty
        and unit-test fixtures typed. -#}
    select
    {%- for column in model.columns.values() %}
        cast(null as {{ column.data_type }}) as {{ adapter.quote(column.name) }}{% if not loop.last %},{% endif %}
    {%- endfor %}
    where false
{%- endmacro %}
