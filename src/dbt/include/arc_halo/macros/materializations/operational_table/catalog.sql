{#-
    The table as PostgreSQL's catalog describes it (columns, constraints, indexes, the views that read a
    column), in the same shape as the contract, so evolve.sql compares like for like.
-#}

{% macro operational_catalog_columns(relation_sql) -%}
    {#- Columns as the catalog spells them, so the contract and the table compare like for like. -#}
    {%- set query -%}
        select
            a.attname as column_name,
            format_type(a.atttypid, a.atttypmod) as data_type,
            a.attnotnull as not_null,
            pg_get_expr(d.adbin, d.adrelid) as default_expression
        from pg_attribute as a
        left join pg_attrdef as d on a.attrelid = d.adrelid and a.attnum = d.adnum
        where a.attrelid = '{{ relation_sql }}'::regclass and a.attnum > 0 and not a.attisdropped
        order by a.attnum
    {%- endset -%}
    {%- set found = {} -%}
    {%- for row in run_query(query) -%}
        {%- do found.update({row['column_name']: {'data_type': row['data_type'], 'not_null': row['not_null'], 'default': row['default_expression']}}) -%}
    {%- endfor -%}
    {{ return(found) }}
{%- endmacro %}


{% macro operational_catalog_constraints(relation_sql) -%}
    {#- Column lists as comma-separated names in key order (agate has no array type). -#}
    {%- set query -%}
        select
            con.conname as constraint_name,
            con.contype as constraint_type,
            pg_get_constraintdef(con.oid) as definition,
            (select string_agg(att.attname, ',' order by key.position)
             from unnest(con.conkey) with ordinality as key (attnum, position)
             inner join pg_attribute as att on att.attrelid = con.conrelid and att.attnum = key.attnum) as key_columns,
            (select string_agg(att.attname, ',' order by key.position)
             from unnest(con.confkey) with ordinality as key (attnum, position)
             inner join pg_attribute as att on att.attrelid = con.confrelid and att.attnum = key.attnum) as referenced_columns,
            con.confdeltype as delete_action
        from pg_constraint as con
        where con.conrelid = '{{ relation_sql }}'::regclass and con.contype in ('p', 'u', 'f', 'c') and con.conparentid = 0
    {%- endset -%}
    {%- set found = {} -%}
    {%- for row in run_query(query) -%}
        {%- do found.update({row['constraint_name']: {
            'type': row['constraint_type'], 'definition': row['definition'],
            'columns': (row['key_columns'] or '').split(','), 'to_columns': (row['referenced_columns'] or '').split(','),
            'delete_action': row['delete_action']}}) -%}
    {%- endfor -%}
    {{ return(found) }}
{%- endmacro %}


{% macro operational_catalog_indexes(relation) -%}
    {#- name -> valid, for the indexes on the table (an INVALID one is rebuilt). -#}
    {%- set query -%}
        select c.relname, i.indisvalid from pg_index as i join pg_class as c on c.oid = i.indexrelid
        where i.indrelid = '{{ relation }}'::regclass
    {%- endset -%}
    {%- set found = {} -%}
    {%- for row in run_query(query) -%}
        {%- do found.update({row[0]: row[1]}) -%}
    {%- endfor -%}
    {{ return(found) }}
{%- endmacro %}


{% macro operational_dependent_views(relation, column_name) -%}
    {#- Views reading a column: ALTER COLUMN TYPE refuses while they exist; the build re-creates them. -#}
    {%- set query -%}
        select distinct format('%I.%I', n.nspname, v.relname) as view_name
        from pg_depend as d
        join pg_rewrite as r on r.oid = d.objid
        join pg_class as v on v.oid = r.ev_class
        join pg_namespace as n on n.oid = v.relnamespace
        join pg_attribute as a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid
        where d.classid = 'pg_rewrite'::regclass and d.refobjid = '{{ relation }}'::regclass
            and a.attname = {{ dbt.string_literal(column_name) }} and v.oid <> d.refobjid
        order by 1
    {%- endset -%}
    {{ return(run_query(query).columns[0].values() | list) }}
{%- endmacro %}
