{#-
    One build at a time per database, for `dbt build` / `run` / `seed` / `test` however started.

    Why the adapter and not SQL here: dbt closes the connection that runs on-run-start before any model
    starts (every node gets its own connection, opened and closed around it), so nothing a hook takes on
    its connection lasts the build. The project's adapter (src/dbt/adapters/arc_halo/build_lock.py) opens
    one session of its own for the whole invocation: it takes a session-level advisory lock, writes the
    lease row (which build holds this database, with the session's pid and start time), and keeps both
    until on-run-end or until the process dies. A waiting build takes over a lease whose session no
    longer holds its lock; connecting under the holder's name cannot fake that session.

    ARC_HALO_BUILD_LOCK_WAIT_SECONDS (var build_lock_wait_seconds) bounds the wait; 0 stops at once.
    The flag skip_nodes_if_on_run_start_fails (dbt_project.yml) makes a build that did not get the
    lock skip every node instead of building alongside the holder.
-#}

{% macro acquire_build_lock() -%}
    {%- set wait_seconds = env_var('ARC_HALO_BUILD_LOCK_WAIT_SECONDS', var('build_lock_wait_seconds')) | int -%}
    {%- if execute -%}
        {#- Nothing is read here: a read on dbt's connection stays open in its transaction, and the lock
            session's first-time DDL on the lease table would wait for it. The adapter says who it waits for. -#}
        {%- do adapter.acquire_build_lock(invocation_id, wait_seconds) -%}
    {%- endif -%}
{%- endmacro %}


{% macro release_build_lock() -%}
    {%- if execute -%}
        {%- do adapter.release_build_lock(invocation_id) -%}
    {%- endif -%}
{%- endmacro %}



{#-
    dbt reads which relations exist before on-run-start. When this build waited for another, that
    other build may have created or replaced relations since; building on the stale picture fails
    halfway with "relation already exists". Compare the picture with the database for every relation
    this project builds and stop cleanly, releasing the lock, if they differ.
-#}
{% macro check_relation_cache_after_lock() -%}
    {%- if execute -%}
        {%- set nodes = graph.nodes.values() | selectattr('resource_type', 'in', ['model', 'seed', 'snapshot'])
                        | rejectattr('config.materialized', 'equalto', 'ephemeral') | list -%}
        {%- set schemas = nodes | map(attribute='schema') | unique | list -%}
        {%- set present = run_query(
            "select n.nspname || '.' || c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            ~ " where c.relkind in ('r', 'p', 'v', 'm', 'f') and n.nspname in ('" ~ schemas | join("', '") ~ "')"
        ).columns[0].values() | list -%}
        {%- set differing = [] -%}
        {%- for node in nodes -%}
            {%- set cached = adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias) -%}
            {%- if (cached is not none) != ((node.schema ~ '.' ~ node.alias) in present) -%}
                {%- do differing.append(node.schema ~ '.' ~ node.alias) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if differing -%}
            {%- do adapter.release_build_lock(invocation_id) -%}
do $stale$
begin
    raise exception 'another build changed this database while this build waited for it (% and % more); '
        'this build changed nothing: run it again', '{{ differing[0] }}', {{ differing | length - 1 }};
end
$stale$;
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
