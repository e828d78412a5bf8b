{#-
    One build at a time per database, for `dbt build` / `run` / `seed` / `test` however started.

    Why a lease row and not pg_advisory_lock: dbt closes the connection that runs on-run-start before
    any model starts (every node gets its own connection, opened and closed around it), so a session
    lock taken in a hook is gone before the first model runs. The lease is a row that says which dbt
    invocation builds this database; the profile names every connection `dbt <invocation_id>`, so a
    waiting build sees whether the holder still has a connection open. A holder with no connection
    for `build_lock_stale_seconds` ended without releasing (killed, crashed) and its lease is taken over.

    ARC_HALO_BUILD_LOCK_WAIT_SECONDS (var build_lock_wait_seconds) bounds the wait; 0 stops at once.
    The flag skip_nodes_if_on_run_start_fails (dbt_project.yml) makes a build that did not get the
    lock skip every node instead of building alongside the holder.
-#}

{% macro acquire_build_lock() -%}
    {%- set wait_seconds = env_var('ARC_HALO_BUILD_LOCK_WAIT_SECONDS', var('build_lock_wait_seconds')) | int -%}
    {%- set stale_seconds = var('build_lock_stale_seconds') | int -%}
    {%- if execute -%}
        {%- set exists = run_query("select to_regclass('arc_halo_build.lease') is not null").rows[0][0] -%}
        {%- set holder = run_query(build_lock_holder_query()) if exists else none -%}
        {%- if holder and holder.rows | length > 0 and holder.rows[0][0] != invocation_id -%}
            {{ log("build lock: another build (dbt invocation " ~ holder.rows[0][0] ~ ", user " ~ holder.rows[0][1]
                   ~ ", since " ~ holder.rows[0][2] ~ ") is building this database; waiting up to " ~ wait_seconds
                   ~ " s for it to finish (ARC_HALO_BUILD_LOCK_WAIT_SECONDS)", info=true) }}
        {%- endif -%}
    {%- endif -%}
-- The lease table, created once; the transaction lock keeps two first builds from racing on it.
select pg_advisory_xact_lock(hashtext('arc_halo.build_lock'));
create schema if not exists arc_halo_build;
create table if not exists arc_halo_build.lease (
    lock_name text primary key,
    holder_invocation text not null,
    holder_application text not null,
    holder_user text not null default current_user,
    acquired_at timestamptz not null default now()
);
comment on table arc_halo_build.lease is
    'Which dbt invocation is building this database (one row while a build runs); see macros/build_lock.';
commit;
set statement_timeout = 0;
do $build_lock$
declare
    me constant text := '{{ invocation_id }}';
    deadline constant timestamptz := clock_timestamp() + make_interval(secs => {{ wait_seconds }});
    holder arc_halo_build.lease;
    gone_since timestamptz;
begin
    loop
        -- pg_stat_activity is read once per transaction and kept; this whole wait is one transaction.
        perform pg_stat_clear_snapshot();
        insert into arc_halo_build.lease (lock_name, holder_invocation, holder_application)
        values ('build', me, current_setting('application_name'))
        on conflict (lock_name) do nothing;
        if found then
            return;
        end if;
        select * into holder from arc_halo_build.lease where lock_name = 'build';
        if holder.holder_invocation = me then
            return;
        end if;
        if holder.holder_invocation is not null then
            if exists (
                select from pg_stat_activity
                where datname = current_database() and application_name = holder.holder_application
                    and pid <> pg_backend_pid()
            ) then
                gone_since := null;
            else
                gone_since := coalesce(gone_since, clock_timestamp());
                if clock_timestamp() - gone_since >= make_interval(secs => {{ stale_seconds }}) then
                    raise warning 'build lock: build % (since %) has had no connection for % s: taking over its lock',
                        holder.holder_invocation, holder.acquired_at, {{ stale_seconds }};
                    delete from arc_halo_build.lease
                    where lock_name = 'build' and holder_invocation = holder.holder_invocation;
                    continue;
                end if;
            end if;
            if clock_timestamp() >= deadline then
                raise exception 'another build of this database is running (dbt invocation %, user %, since %); '
                    'waited % s, nothing was changed: run again when it has finished, or raise '
                    'ARC_HALO_BUILD_LOCK_WAIT_SECONDS',
                    holder.holder_invocation, holder.holder_user, holder.acquired_at, {{ wait_seconds }};
            end if;
        end if;
        perform pg_sleep(0.5);
    end loop;
end
$build_lock$;
{%- endmacro %}


{% macro release_build_lock() -%}
delete from arc_halo_build.lease where lock_name = 'build' and holder_invocation = '{{ invocation_id }}';
commit;
{%- endmacro %}


{% macro build_lock_holder_query() -%}
select holder_invocation, holder_user, acquired_at::text
from arc_halo_build.lease
where lock_name = 'build'
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
            {%- do run_query(release_build_lock()) -%}
do $stale$
begin
    raise exception 'another build changed this database while this build waited for it (% and % more); '
        'this build changed nothing: run it again', '{{ differing[0] }}', {{ differing | length - 1 }};
end
$stale$;
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
