{#-
    operational_table: for tables that applications write. Unlike `table` it never drops, truncates or
    rewrites (also under --full-refresh). On the first run it creates the table from the YAML contract;
    on later runs it compares the contract with the catalog and
      - adds missing columns with type, default (back-filled), NOT NULL, checks and foreign keys,
      - adds missing named constraints, validating existing rows with a clear error,
      - back-fills a new column that a foreign key shares with its parent (tenant_id) from the parent,
      - replaces a CHECK or a foreign key that changed, and a key widened by more columns (validated the
        same way),
      - creates missing indexes (stable names) and applies column storage settings,
    converts a plain table to the partitioned one its config asks for (every row moved, in the build's
    transaction, counted before the old table goes),
    and refuses anything that would lose or reinterpret data (a column dropped from the contract, a
    changed type, a changed primary key or unique key) with an error naming the migration to write.
-#}

{% materialization operational_table, adapter='postgres' %}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set existing = adapter.get_relation(database=this.database, schema=this.schema, identifier=this.identifier) -%}
    {%- set columns = operational_columns(model) -%}
    {%- set constraints = operational_constraints(model, this.identifier) -%}
    {%- set indexes = operational_indexes(this.identifier) -%}
    {%- set grant_config = config.get('grants') -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- set partition_by = config.get('partition_by') -%}
    {%- set converted = existing is not none and existing.type == 'table' and partition_by and not operational_is_partitioned(target_relation) -%}
    {%- if existing is none -%}
        {%- call statement('main') -%}
            {{ operational_create_table_ddl(target_relation, columns, constraints, partition_by, config.get('table_options')) }};
            {{ operational_default_partition_ddl(target_relation, partition_by) }}
        {%- endcall -%}
    {%- elif existing.type != 'table' -%}
        {{ exceptions.raise_compiler_error(target_relation ~ " exists as a " ~ existing.type ~ ", not a table: rename or drop it by hand (it is not managed as operational data)") }}
    {%- elif converted -%}
        {%- call statement('convert_to_partitions') -%}
            {{ operational_partition_existing(target_relation, columns, constraints, partition_by) }}
        {%- endcall -%}
    {%- else -%}
        {%- set steps = operational_evolve_table(target_relation, columns, constraints) -%}
        {#- Commits what dbt has open (the catalog reads' locks), then runs each step in its own transaction. -#}
        {%- do adapter.apply_online_ddl(steps) -%}
    {%- endif -%}

    {%- for column_name, storage in config.get('column_storage', {}).items() -%}
        {%- call statement('column_storage_' ~ column_name) -%}
            alter table {{ target_relation }} alter column {{ adapter.quote(column_name) }} set storage {{ storage }}
        {%- endcall -%}
    {%- endfor -%}
    {%- if existing is none or converted -%}
        {%- for index in indexes -%}
            {%- call statement('index_' ~ loop.index) -%}
                {{ operational_index_ddl(target_relation, index) }}
            {%- endcall -%}
        {%- endfor -%}
    {%- endif -%}

    {%- if existing is none -%}
        {{ run_hooks(post_hooks, inside_transaction=True) }}
    {%- else -%}
        {#- Hooks (triggers, policies) on a table writers use: each in its own transaction with a short
            lock_timeout and retries, like the steps above, never queued behind a long query. -#}
        {%- set hook_steps = [] -%}
        {%- for hook in post_hooks | selectattr('transaction', 'equalto', true) -%}
            {%- set rendered = render(hook.get('sql')) | trim -%}
            {%- if rendered -%}
                {%- do operational_step(hook_steps, rendered) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- do adapter.apply_online_ddl(hook_steps) -%}
        {%- call statement('main') -%}
            select {{ hook_steps | length }} as online_hooks
        {%- endcall -%}
    {%- endif -%}
    {% do persist_docs(target_relation, model) %}
    {% do apply_grants(target_relation, grant_config, should_revoke=true) %}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}


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


{% macro operational_refuse(relation, problem, what, migration_sql, squawk_ignore=none) -%}
    {#- The advice works when followed literally: a file name the migration runner accepts, the SQL to
        put in it (unqualified names: the runner puts the target schema first on the search path), and
        the command that applies it. The lint gate's squawk accepts the file too: `squawk_ignore` is
        (rules, reason) for statements the change needs that squawk bans by default, silenced for that
        statement with the reason beside it (a block comment, so the advice stays one line). -#}
    {%- if squawk_ignore -%}
        {%- set migration_sql = "/* squawk-ignore " ~ (squawk_ignore[0] | join(', ')) ~ " */ /* " ~ squawk_ignore[1] ~ " */ " ~ migration_sql -%}
    {%- endif -%}
    {%- set version = modules.datetime.datetime.utcnow().strftime('%Y%m%d%H%M%S') -%}
    {%- set file_name = 'migrations/' ~ version ~ '_' ~ modules.re.sub('[^a-z0-9_]+', '_', (relation.identifier ~ '_' ~ what) | lower) ~ '.sql' -%}
    {{ exceptions.raise_compiler_error(
        "arc-halo refuses to change " ~ relation ~ ": " ~ problem ~ ". Nothing was changed. "
        ~ "Write the change as a migration: create " ~ file_name ~ " containing `" ~ migration_sql ~ "` "
        ~ "then run `arc-halo db migrate` (every build also applies pending migrations first) and build again; "
        ~ "or restore the contract in the model's YAML.") }}
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


{% macro operational_guarded(statement, relation, what) -%}
    {#- Run DDL that existing rows might violate; on failure, say which rows and what to write. -#}
do $arc_halo_guard$
begin
    {{ statement }};
exception when others then
    raise exception using
        errcode = sqlstate,
        message = format(
            'arc-halo: cannot %s on %s: %s. Existing rows violate it; nothing was changed. '
            'Write a migration in migrations/ that fixes those rows (arc-halo db migrate), then build again.',
            {{ dbt.string_literal(what) }}, {{ dbt.string_literal(relation) }}, sqlerrm);
end
$arc_halo_guard$;
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
        {{ operational_refuse(relation, "column " ~ name ~ " is in the table but no longer in the contract; dropping it would lose its data",
                              "alter table " ~ relation ~ " drop column " ~ name ~ ", after saving what it holds") }}
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
