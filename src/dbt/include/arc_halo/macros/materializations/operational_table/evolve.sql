{#-
    From the table as it is to the table the contract asks for: refusals first, then additive changes as
    online steps ({sql, kind, what, undo}) that adapter.apply_online_ddl runs each in a short transaction.
-#}

{% macro operational_evolve_table(relation, columns, constraints) -%}
    {%- set probe = adapter.quote(relation.identifier ~ '__contract') -%}
    {%- set probe_constraints = constraints | rejectattr('kind', 'equalto', 'foreign_key') | list -%}
    {#- A temporary copy of the contract lets PostgreSQL normalise types, defaults and checks. -#}
    {%- call statement('contract_probe') -%}
        drop table if exists pg_temp.{{ probe }};
        {{ operational_create_table_ddl('pg_temp.' ~ probe, columns, probe_constraints) | replace('create table', 'create temporary table') }}
    {%- endcall -%}
    {%- set wanted = operational_catalog_columns('pg_temp.' ~ probe) -%}
    {%- set wanted_constraints = operational_catalog_constraints('pg_temp.' ~ probe) -%}
    {%- set actual = operational_catalog_columns(relation) -%}
    {%- set actual_constraints = operational_catalog_constraints(relation) -%}
    {%- call statement('contract_probe_drop') -%}drop table pg_temp.{{ probe }}{%- endcall -%}
    {%- set has_rows = run_query('select exists (select 1 from ' ~ relation ~ ') as has_rows').columns[0].values()[0] -%}

    {#- 1. Refuse what would lose or reinterpret data, before changing anything. -#}
    {%- set table_name = relation.identifier -%}
    {%- for name in actual if name not in wanted -%}
        {%- set renamed = [] -%}
        {%- for new_name, column in wanted.items() if new_name not in actual and column.data_type == actual[name].data_type -%}
            {%- do renamed.append(new_name) -%}
        {%- endfor -%}
        {%- if renamed | length == 1 -%}
            {{ operational_refuse(relation, "column " ~ name ~ " is in the table but no longer in the contract, which has a new column " ~ renamed[0] ~ " of the same type; if it was renamed",
                                  "rename_" ~ name ~ "_to_" ~ renamed[0], "alter table " ~ table_name ~ " rename column " ~ name ~ " to " ~ renamed[0] ~ ";") }}
        {%- else -%}
            {{ operational_refuse(relation, "column " ~ name ~ " is in the table but no longer in the contract; dropping it would lose its data, so save what it holds first",
                                  "drop_" ~ name, "alter table " ~ table_name ~ " drop column " ~ name ~ ";",
                                  (["ban-drop-column"], "its data is saved and no client reads it any more")) }}
        {%- endif -%}
    {%- endfor -%}
    {%- for name, column in wanted.items() if name in actual and actual[name].data_type != column.data_type -%}
        {%- set views = operational_dependent_views(relation, name) -%}
        {{ operational_refuse(relation, "column " ~ name ~ " is " ~ actual[name].data_type ~ " in the table but " ~ column.data_type ~ " in the contract",
                              name ~ "_to_" ~ column.data_type,
                              ("drop view if exists " ~ (views | join(', ')) ~ " cascade; " if views else "")
                              ~ "alter table " ~ table_name ~ " alter column " ~ name ~ " type " ~ column.data_type ~ " using " ~ name ~ "::" ~ column.data_type ~ ";",
                              (["ban-drop-view"], "the next build re-creates the views") if views else none) }}
    {%- endfor -%}
    {#- A key widened by more columns (tenant_id) cannot fail on existing rows: it is replaced below. -#}
    {%- for name, constraint in wanted_constraints.items() if name in actual_constraints and constraint.type in ('p', 'u') and actual_constraints[name].definition != constraint.definition
                                                              and (actual_constraints[name].columns | reject('in', constraint.columns) | list) -%}
        {{ operational_refuse(relation, "key " ~ name ~ " is " ~ actual_constraints[name].definition ~ " in the table but " ~ constraint.definition ~ " in the contract (check the rows are unique under the new key)",
                              "change_" ~ name, "alter table " ~ table_name ~ " drop constraint " ~ name ~ ", add constraint " ~ name ~ " " ~ constraint.definition ~ ";",
                              (["ban-drop-constraint", "constraint-missing-not-valid", "adding-serial-primary-key-field"],
                               "the key is replaced in one statement; the table is locked while its index is built")) }}
    {%- endfor -%}
    {%- for column in columns if column.name not in actual and column.not_null and column.default is none and has_rows -%}
        {{ operational_refuse(relation, "new column " ~ column.name ~ " is NOT NULL without a default, but the table has rows (or give it a default in the contract)",
                              "add_" ~ column.name, "alter table " ~ table_name ~ " add column " ~ column.name ~ " " ~ column.data_type ~ "; update " ~ table_name ~ " set " ~ column.name ~ " = <its value for existing rows>;") }}
    {%- endfor -%}

    {#- 2. Additive changes, as online steps (arc_halo.online_ddl): each in its own short transaction. -#}
    {%- set steps = [] -%}
    {%- set partitioned = operational_is_partitioned(relation) -%}
    {%- set server_version = run_query("select current_setting('server_version_num')::int").columns[0].values()[0] -%}
    {%- for column in columns if column.name not in actual -%}
        {%- set backfill_sources = operational_backfill_sources(column.name, constraints, actual, relation) if has_rows else [] -%}
        {%- if backfill_sources -%}
            {%- do operational_step(steps, 'alter table ' ~ relation ~ ' add column ' ~ adapter.quote(column.name) ~ ' ' ~ column.data_type) -%}
            {%- for source in backfill_sources -%}
                {%- set matches = [] -%}
                {%- for child_column, parent_column in source.pairs -%}
                    {%- do matches.append(' and parent.' ~ adapter.quote(parent_column) ~ ' = child.' ~ adapter.quote(child_column)) -%}
                {%- endfor -%}
                {%- do operational_step(steps, 'update ' ~ relation ~ ' as child set ' ~ adapter.quote(column.name) ~ ' = parent.' ~ adapter.quote(source.value)
                                        ~ ' from ' ~ source.references ~ ' as parent where child.' ~ adapter.quote(column.name) ~ ' is null' ~ (matches | join(''))) -%}
            {%- endfor -%}
            {%- if column.default is not none -%}
                {%- do operational_step(steps, 'alter table ' ~ relation ~ ' alter column ' ~ adapter.quote(column.name) ~ ' set default ' ~ column.default) -%}
            {%- endif -%}
            {%- if column.not_null -%}
                {%- do operational_not_null_steps(steps, relation, column.name, 'make new column ' ~ column.name ~ ' NOT NULL (rows without a parent to take it from)') -%}
            {%- endif -%}
        {%- elif column.default is not none and operational_volatile(column.default) -%}
            {%- do operational_step(steps, 'alter table ' ~ relation ~ ' add column ' ~ adapter.quote(column.name) ~ ' ' ~ column.data_type) -%}
            {%- do operational_step(steps, 'alter table ' ~ relation ~ ' alter column ' ~ adapter.quote(column.name) ~ ' set default ' ~ column.default) -%}
            {%- do operational_step(steps, 'update ' ~ relation ~ ' set ' ~ adapter.quote(column.name) ~ ' = default where ' ~ adapter.quote(column.name) ~ ' is null') -%}
            {%- if column.not_null -%}
                {%- do operational_not_null_steps(steps, relation, column.name, 'make new column ' ~ column.name ~ ' NOT NULL') -%}
            {%- endif -%}
        {%- else -%}
            {#- A constant default is stored in the catalog (PostgreSQL 11+): no rewrite, no scan. -#}
            {%- do operational_step(steps, 'alter table ' ~ relation ~ ' add column ' ~ operational_column_ddl(column)) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for name, column in wanted.items() if name in actual -%}
        {%- if actual[name].default != column.default -%}
            {%- do operational_step(steps, 'alter table ' ~ relation ~ ' alter column ' ~ adapter.quote(name)
                                    ~ (' drop default' if column.default is none else ' set default ' ~ column.default)) -%}
        {%- endif -%}
        {%- if column.not_null and not actual[name].not_null -%}
            {%- do operational_not_null_steps(steps, relation, name, 'make column ' ~ name ~ ' NOT NULL') -%}
        {%- elif not column.not_null and actual[name].not_null -%}
            {%- do operational_step(steps, 'alter table ' ~ relation ~ ' alter column ' ~ adapter.quote(name) ~ ' drop not null') -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for constraint in constraints -%}
        {%- set current = actual_constraints.get(constraint.name) -%}
        {%- set what = ('add' if current is none else 'change') ~ ' constraint ' ~ constraint.name ~ ' on ' ~ (constraint.columns | join(', ')) -%}
        {%- set changed = current is not none and ((constraint.kind in ('check', 'primary_key', 'unique') and current.definition != wanted_constraints[constraint.name].definition)
                                                   or (constraint.kind == 'foreign_key' and operational_foreign_key_changed(constraint, current))) -%}
        {#- PostgreSQL before 18 refuses NOT VALID foreign keys on partitioned tables: there the key is added
            (validated) in one statement, under the same lock timeout and retries. -#}
        {%- set not_valid_refused = partitioned and constraint.kind == 'foreign_key' and server_version < 180000 -%}
        {%- if constraint.kind in ('check', 'foreign_key') and (current is none or changed) and not not_valid_refused -%}
            {#- NOT VALID takes its lock for a moment; VALIDATE scans under a lock writers do not conflict with.
                A changed one is checked under a new name first, then swapped in one short transaction. -#}
            {%- set staged = constraint.name if current is none else operational_identifier([constraint.name], 'new') -%}
            {%- do operational_step(steps, 'alter table ' ~ relation ~ ' drop constraint if exists ' ~ staged ~ ', add constraint ' ~ staged ~ ' ' ~ constraint.body ~ ' not valid') -%}
            {%- do operational_step(steps, 'alter table ' ~ relation ~ ' validate constraint ' ~ staged, kind='validate', what=what,
                                    undo='alter table ' ~ relation ~ ' drop constraint if exists ' ~ staged) -%}
            {%- if changed -%}
                {%- do operational_step(steps, 'alter table ' ~ relation ~ ' drop constraint ' ~ constraint.name ~ '; alter table ' ~ relation ~ ' rename constraint ' ~ staged ~ ' to ' ~ constraint.name) -%}
            {%- endif -%}
        {%- elif current is none -%}
            {%- do operational_step(steps, operational_guarded('alter table ' ~ relation ~ ' add constraint ' ~ constraint.name ~ ' ' ~ constraint.body, relation, what)) -%}
        {%- elif changed -%}
            {%- do operational_step(steps, operational_guarded('alter table ' ~ relation ~ ' drop constraint ' ~ constraint.name ~ ', add constraint ' ~ constraint.name ~ ' ' ~ constraint.body, relation, what)) -%}
        {%- endif -%}
    {%- endfor -%}
    {#- Indexes: CONCURRENTLY on a plain table; a partitioned parent gets an index ON ONLY itself, one built
        concurrently on each partition, attached. -#}
    {%- set existing_indexes = operational_catalog_indexes(relation) -%}
    {%- for index in operational_indexes(relation.identifier) if index.name not in existing_indexes or not existing_indexes[index.name] -%}
        {%- set ddl = operational_index_ddl(relation, index) -%}
        {%- if not partitioned -%}
            {%- do steps.append({'sql': ddl | replace(' index if not exists ', ' index concurrently if not exists '), 'kind': 'concurrently', 'index': index.name, 'what': 'create index ' ~ index.name}) -%}
        {%- else -%}
            {%- do operational_step(steps, ddl | replace(' on ' ~ relation ~ ' using', ' on only ' ~ relation ~ ' using')) -%}
            {%- for partition in operational_partitions(relation) -%}
                {%- set partition_index = operational_identifier([partition.identifier, index.name], 'part') -%}
                {%- set partition_ddl = ddl | replace(' ' ~ index.name ~ '\n', ' ' ~ partition_index ~ '\n') | replace(' on ' ~ relation ~ ' using', ' on ' ~ partition ~ ' using') -%}
                {%- do steps.append({'sql': partition_ddl | replace(' index if not exists ', ' index concurrently if not exists '), 'kind': 'concurrently', 'index': partition_index, 'what': 'create index ' ~ partition_index}) -%}
                {%- do operational_step(steps, 'alter index ' ~ relation.schema ~ '.' ~ index.name ~ ' attach partition ' ~ relation.schema ~ '.' ~ partition_index) -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set declared = constraints | map(attribute='name') | list -%}
    {%- for name in actual_constraints if name not in declared -%}
        {% do log("arc-halo: " ~ relation ~ " has constraint " ~ name ~ " that its contract does not declare; left in place (drop it in a migration if intended)", info=true) %}
    {%- endfor %}
    {{ return(steps) }}
{%- endmacro %}


{% macro operational_step(steps, sql, kind='lock', what=none, undo=none) -%}
    {%- do steps.append({'sql': sql, 'kind': kind, 'what': what, 'undo': undo}) -%}
{%- endmacro %}


{% macro operational_not_null_steps(steps, relation, column_name, what) -%}
    {#- SET NOT NULL scans the table under ACCESS EXCLUSIVE, unless a validated CHECK (col is not null)
        already proves it (PostgreSQL 12+): add that NOT VALID, validate it online, then drop it. -#}
    {%- set proof = operational_identifier([relation.identifier, column_name], 'not_null_proof') -%}
    {%- do operational_step(steps, 'alter table ' ~ relation ~ ' drop constraint if exists ' ~ proof ~ ', add constraint ' ~ proof ~ ' check (' ~ adapter.quote(column_name) ~ ' is not null) not valid') -%}
    {%- do operational_step(steps, 'alter table ' ~ relation ~ ' validate constraint ' ~ proof, kind='validate', what=what,
                            undo='alter table ' ~ relation ~ ' drop constraint if exists ' ~ proof) -%}
    {%- do operational_step(steps, 'alter table ' ~ relation ~ ' alter column ' ~ adapter.quote(column_name) ~ ' set not null; alter table ' ~ relation ~ ' drop constraint ' ~ proof) -%}
{%- endmacro %}


{% macro operational_backfill_sources(column_name, constraints, actual, relation) -%}
    {#-
        A new column that a foreign key shares with its parent (tenant_id in (tenant_id, model_id)) takes
        the parent's value in existing rows, through the key's other columns. config(backfill_from=[{to,
        columns, to_columns}]) names the same for a reference a trigger checks instead of a foreign key.
    -#}
    {%- set candidates = constraints | selectattr('kind', 'equalto', 'foreign_key') | list -%}
    {%- for source in config.get('backfill_from', []) -%}
        {%- do candidates.append({'references': relation.schema ~ '.' ~ source.to, 'columns': source.columns, 'to_columns': source.to_columns}) -%}
    {%- endfor -%}
    {%- set sources = [] -%}
    {%- for candidate in candidates if column_name in candidate.columns -%}
        {%- set others = candidate.columns | reject('equalto', column_name) | list -%}
        {%- if others and (others | reject('in', actual) | list | length) == 0 -%}
            {%- set pairs = [] -%}
            {%- for child_column in others -%}
                {%- do pairs.append((child_column, candidate.to_columns[candidate.columns.index(child_column)])) -%}
            {%- endfor -%}
            {%- do sources.append({'references': candidate.references, 'value': candidate.to_columns[candidate.columns.index(column_name)], 'pairs': pairs}) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(sources) }}
{%- endmacro %}


{% macro operational_volatile(expression) -%}
    {#- True when a default calls a volatile function (gen_random_uuid, clock_timestamp, ...):
        adding such a column with its default would rewrite the table, so it is back-filled instead. -#}
    {%- set functions = modules.re.findall('([A-Za-z_][A-Za-z0-9_]*)\\s*\\(', expression) -%}
    {%- if not functions -%}{{ return(false) }}{%- endif -%}
    {%- set query -%}
        select coalesce(bool_or(provolatile = 'v'), false) as is_volatile from pg_proc
        where proname in ({% for name in functions %}{{ dbt.string_literal(name | lower) }}{% if not loop.last %}, {% endif %}{% endfor %})
    {%- endset -%}
    {{ return(run_query(query).columns[0].values()[0]) }}
{%- endmacro %}


{% macro operational_delete_action(expression) -%}
    {#- pg_constraint.confdeltype of a foreign key's ON DELETE clause. -#}
    {%- set clause = (expression or '') | lower -%}
    {%- set actions = [('on delete cascade', 'c'), ('on delete set null', 'n'), ('on delete set default', 'd'), ('on delete restrict', 'r')] -%}
    {%- for phrase, action in actions if phrase in clause -%}
        {{ return(action) }}
    {%- endfor -%}
    {{ return('a') }}
{%- endmacro %}


{% macro operational_foreign_key_changed(constraint, current) -%}
    {{ return(current.columns != constraint.columns or current.to_columns != constraint.to_columns
              or current.delete_action != operational_delete_action(constraint.expression)) }}
{%- endmacro %}
