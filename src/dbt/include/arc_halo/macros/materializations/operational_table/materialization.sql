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

    Declared for `arc_halo` (dbt-postgres plus this adapter): the online steps run through
    adapter.apply_online_ddl (dbt.adapters.arc_halo.impl), which dbt-postgres does not have.
    Beside this file, one family each: contract.sql (the YAML contract read), create.sql (the DDL it
    asks for), catalog.sql (the table as it is), evolve.sql (the steps from one to the other),
    refusals.sql (the errors that say what to write), partitions.sql (partitioned tables).
-#}

{% materialization operational_table, adapter='arc_halo' %}
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
