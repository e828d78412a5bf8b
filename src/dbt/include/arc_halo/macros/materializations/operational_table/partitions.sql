{#-
    Partitioned operational tables: is it one, its partitions, the default partition config(partition_by)
    asks for, and moving a plain table into partitions without losing a row.
-#}

{% macro operational_is_partitioned(relation) -%}
    {{ return(run_query("select relkind = 'p' from pg_class where oid = '" ~ relation ~ "'::regclass").columns[0].values()[0]) }}
{%- endmacro %}


{% macro operational_partitions(relation) -%}
    {%- set query -%}
        select c.relname from pg_inherits as i join pg_class as c on c.oid = i.inhrelid
        where i.inhparent = '{{ relation }}'::regclass order by 1
    {%- endset -%}
    {%- set partitions = [] -%}
    {%- for name in run_query(query).columns[0].values() -%}
        {%- do partitions.append(relation.incorporate(path={'identifier': name})) -%}
    {%- endfor -%}
    {{ return(partitions) }}
{%- endmacro %}


{% macro operational_default_partition_ddl(relation, partition_by) -%}
    {%- if partition_by and partition_by.default_partition -%}
    create table if not exists {{ relation.schema }}.{{ relation.identifier }}_default partition of {{ relation }} default
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}


{% macro operational_partition_existing(relation, columns, constraints, partition_by) -%}
    {#- A plain table that the contract now wants partitioned: renamed aside (its keys and indexes too, to
        free their names), the partitioned table created from the contract, every row moved, the counts
        compared, and only then the old table dropped. All in the build's transaction: a failure leaves the
        table as it was. A column the contract no longer has is refused, as in operational_evolve_table. -#}
    {%- set actual = operational_catalog_columns(relation) -%}
    {%- set wanted = columns | map(attribute='name') | list -%}
    {%- for name in actual if name not in wanted -%}
        {{ operational_refuse(relation, "column " ~ name ~ " is in the table but no longer in the contract; dropping it would lose its data, so save what it holds first",
                              "drop_" ~ name, "alter table " ~ relation.identifier ~ " drop column " ~ name ~ ";",
                              (["ban-drop-column"], "its data is saved and no client reads it any more")) }}
    {%- endfor -%}
    {%- set aside = relation.identifier ~ '__unpartitioned' -%}
    {%- set moved = [] -%}
    {%- for name in wanted if name in actual -%}{%- do moved.append(adapter.quote(name)) -%}{%- endfor -%}
    {%- set column_list = moved | join(', ') %}
    alter table {{ relation }} rename to {{ aside }};
    do $arc_halo_aside$
    declare
        item record;
    begin
        for item in
            select conname from pg_constraint
            where conrelid = '{{ relation.schema }}.{{ aside }}'::regclass and contype in ('p', 'u', 'x')
        loop
            execute format('alter table {{ relation.schema }}.{{ aside }} rename constraint %I to %I',
                           item.conname, left(item.conname, 40) || '__unpartitioned');
        end loop;
        for item in
            select index.indexrelid::regclass as index_name, class.relname from pg_index as index
            join pg_class as class on class.oid = index.indexrelid
            where index.indrelid = '{{ relation.schema }}.{{ aside }}'::regclass
              and not exists (select from pg_constraint where conindid = index.indexrelid)
        loop
            execute format('alter index %s rename to %I', item.index_name, left(item.relname, 40) || '__unpartitioned');
        end loop;
    end
    $arc_halo_aside$;
    {{ operational_create_table_ddl(relation, columns, constraints, partition_by) }};
    {{ operational_default_partition_ddl(relation, partition_by) }};
    insert into {{ relation }} ({{ column_list }}) select {{ column_list }} from {{ relation.schema }}.{{ aside }};
    do $arc_halo_count$
    begin
        if (select count(*) from {{ relation }}) <> (select count(*) from {{ relation.schema }}.{{ aside }}) then
            raise exception 'arc-halo: moving {{ relation }} into partitions lost rows; nothing was changed';
        end if;
    end
    $arc_halo_count$;
    drop table {{ relation.schema }}.{{ aside }}
{%- endmacro %}
