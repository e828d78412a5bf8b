{#-
    Functions the tables' constraints and triggers need, created before any model by on-run-start
    (plpgsql is outside dbt's functions resource, which handles scalar SQL only).
    One macro per function; `create_schema_helpers` runs them all.
-#}

{% macro create_schema_helpers() -%}
    {{ helper_tensor_shape_elements() }}
    {{ helper_touch_updated_at() }}
    {{ helper_tensor_metadata_validate() }}
    {{ helper_attention_row_checks() }}
    {{ helper_training_metrics_after_insert() }}
    {{ helper_training_sessions_delete_metrics() }}
    {{ helper_create_training_metrics_partitions() }}
    {{ helper_purge_expired_cache() }}
    {{ helper_run_upkeep() }}
    {{ helper_register_upkeep_schedule() }}
    {{ helper_embedding_partitions() }}
    {{ helper_check_tenant_references() }}
    {{ helper_external_uri_allowed() }}
{%- endmacro %}


{% macro helper_tensor_shape_elements() -%}
-- Exact product of a tensor's dimensions ('{}' is a 0-d scalar: one element); overflow raises.
create or replace function {{ target.schema }}.tensor_shape_elements(shape bigint[])
returns bigint
language plpgsql immutable strict parallel safe
as $fn$
declare
    elements bigint := 1;
    dimension bigint;
begin
    foreach dimension in array shape loop
        elements := elements * dimension;
    end loop;
    return elements;
end
$fn$;
{%- endmacro %}


{% macro helper_touch_updated_at() -%}
-- Keeps updated_at honest whatever client writes the row.
create or replace function {{ target.schema }}.touch_updated_at()
returns trigger
language plpgsql
as $fn$
begin
    new.updated_at := now();
    return new;
end
$fn$;
{%- endmacro %}


{% macro helper_tensor_metadata_validate() -%}
-- byte_size must equal element_count x the dtype's width. A CHECK cannot read tensor_dtypes, so this
-- trigger raises a check_violation that carries the constraint name, like a CHECK would.
create or replace function {{ target.schema }}.tensor_metadata_validate()
returns trigger
language plpgsql
set search_path = {{ target.schema }}, pg_temp
as $fn$
declare
    width_bits integer;
begin
    select bits_per_element into width_bits from tensor_dtypes where dtype = new.dtype;
    if width_bits is not null and new.byte_size <> new.element_count * width_bits / 8 then
        raise exception using
            errcode = 'check_violation',
            constraint = 'tensor_metadata_byte_size_check',
            table = tg_table_name,
            schema = tg_table_schema,
            message = format(
                'new row for relation "tensor_metadata" violates check constraint "tensor_metadata_byte_size_check": '
                'byte_size %s <> %s elements x %s bits (%s)',
                new.byte_size, new.element_count, width_bits, new.dtype);
    end if;
    return new;
end
$fn$;
{%- endmacro %}


{% macro helper_attention_row_checks() -%}
-- What attention_patterns' checks compute over the query rows of a row-major pattern with key_count keys
-- per row, in double precision as the attention_head_stats model does: the largest |row sum - 1|, and
-- the largest row entropy over log(max(key_count, 2)). A wrong key_count (the ranges and shape checks
-- refuse it) gives a number, not an error.
create or replace function {{ target.schema }}.attention_max_row_sum_error(weights real[], key_count integer)
returns double precision
language sql immutable strict parallel safe
as $fn$
    select max(abs(row_sum - 1))
    from (
        select sum(cell.weight::float8) as row_sum
        from unnest(weights) with ordinality as cell (weight, position)
        group by (cell.position - 1) / nullif(key_count, 0)
    ) as query_rows
$fn$;

create or replace function {{ target.schema }}.attention_max_row_entropy(weights real[], key_count integer)
returns double precision
language sql immutable strict parallel safe
as $fn$
    select max(row_entropy) / ln(greatest(key_count, 2))
    from (
        select sum(case when cell.weight > 0 then -cell.weight::float8 * ln(cell.weight::float8) else 0 end)
            as row_entropy
        from unnest(weights) with ordinality as cell (weight, position)
        group by (cell.position - 1) / nullif(key_count, 0)
    ) as query_rows
$fn$;
{%- endmacro %}


{% macro helper_training_metrics_after_insert() -%}
-- Once per INSERT or COPY statement, over its rows:
-- 1. every (tenant, session) exists (what a composite foreign key checks per row, at a fraction of the
--    cost), locked FOR KEY SHARE first so a concurrent delete waits for this transaction, as with a
--    foreign key. The tenant is part of the key, so a row can only name a session of its own tenant;
--    under row-level security the lookup sees the caller's sessions only, so another tenant's session
--    is reported missing exactly like one that does not exist;
-- 2. training_metrics_latest gets each (session, metric)'s newest row, so progress views read one row
--    per pair instead of scanning history. The newest step per pair comes from a hash aggregate; only
--    those rows are sorted. Rows are upserted in key order, so concurrent writers wait, not deadlock.
create or replace function {{ target.schema }}.training_metrics_after_insert()
returns trigger
language plpgsql
set search_path = {{ target.schema }}, pg_temp
as $fn$
declare
    batch_tenants text[];
    batch_sessions uuid[];
    locked_sessions integer;
    missing record;
begin
    select array_agg(tenant_id), array_agg(training_session_id) into batch_tenants, batch_sessions
    from (select distinct tenant_id, training_session_id from new_metrics) as batch;  -- a hash aggregate, no sort
    perform from training_sessions as sessions
    inner join unnest(batch_tenants, batch_sessions) as batch (tenant_id, training_session_id)
        on sessions.training_session_id = batch.training_session_id and sessions.tenant_id = batch.tenant_id
    order by sessions.training_session_id
    for key share of sessions;
    get diagnostics locked_sessions = row_count;
    if locked_sessions < cardinality(batch_sessions) then
        select batch.tenant_id, batch.training_session_id into missing
        from unnest(batch_tenants, batch_sessions) as batch (tenant_id, training_session_id)
        where not exists (
            select from training_sessions as sessions
            where sessions.training_session_id = batch.training_session_id and sessions.tenant_id = batch.tenant_id
        )
        limit 1;
        raise foreign_key_violation using
            message = 'insert or update on table "training_metrics" violates foreign key constraint '
                || '"training_metrics_training_session_id_fkey"',
            detail = format('Key (tenant_id, training_session_id)=(%s, %s) is not present in table "training_sessions".',
                            missing.tenant_id, missing.training_session_id),
            constraint = 'training_metrics_training_session_id_fkey',
            table = 'training_metrics';
    end if;

    insert into training_metrics_latest as latest (
        tenant_id, training_session_id, metric_name, step, epoch, value, recorded_at
    )
    select distinct on (new_metrics.training_session_id, new_metrics.metric_name)
        new_metrics.tenant_id, new_metrics.training_session_id, new_metrics.metric_name, new_metrics.step,
        new_metrics.epoch, new_metrics.value, new_metrics.recorded_at
    from new_metrics
    inner join (
        select training_session_id, metric_name, max(step) as step
        from new_metrics
        group by training_session_id, metric_name
    ) as newest
        on new_metrics.training_session_id = newest.training_session_id
        and new_metrics.metric_name = newest.metric_name
        and new_metrics.step = newest.step
    order by new_metrics.training_session_id, new_metrics.metric_name, new_metrics.recorded_at desc
    on conflict on constraint training_metrics_latest_pkey do update
        set step = excluded.step,
            epoch = excluded.epoch,
            value = excluded.value,
            recorded_at = excluded.recorded_at
        where (excluded.step, excluded.recorded_at) >= (latest.step, latest.recorded_at);
    return null;
end
$fn$;
{%- endmacro %}


{% macro helper_training_sessions_delete_metrics() -%}
-- The delete cascade a foreign key on training_metrics would give, once per statement. A foreign key's
-- cascade runs with the table owner's rights, whatever policies the deleter is under; this does the
-- same (SECURITY DEFINER, fixed search_path), and touches only the history of the sessions the
-- statement itself deleted (its transition table), matched on tenant and session.
create or replace function {{ target.schema }}.training_sessions_delete_metrics()
returns trigger
language plpgsql
security definer
set search_path = {{ target.schema }}, pg_temp
as $fn$
begin
    delete from training_metrics as metrics
    using removed_sessions as removed
    where metrics.training_session_id = removed.training_session_id
        and metrics.tenant_id = removed.tenant_id;
    return null;
end
$fn$;
revoke all on function {{ target.schema }}.training_sessions_delete_metrics() from public;
{%- endmacro %}


{% macro helper_create_training_metrics_partitions() -%}
-- Monthly partitions of training_metrics from months_back before now to months_ahead after it.
-- Rows that already landed in the default partition for a new month are moved into it, so
-- creating a partition late never fails and never loses a row. Returns the partitions created.
create or replace function {{ target.schema }}.create_training_metrics_partitions(
    months_back integer default 1, months_ahead integer default 3
)
returns setof text
language plpgsql
set search_path = {{ target.schema }}, pg_temp
set timezone = 'UTC'  -- month boundaries must not depend on the caller's time zone
as $fn$
declare
    month_start timestamptz;
    partition_name text;
begin
    for month_start in
        select generate_series(
            date_trunc('month', now()) - make_interval(months => months_back),
            date_trunc('month', now()) + make_interval(months => months_ahead),
            interval '1 month'
        )
    loop
        partition_name := 'training_metrics_p' || to_char(month_start, 'YYYYMM');
        continue when to_regclass(partition_name) is not null;
        execute format(
            'create table %I (like training_metrics including defaults including constraints)', partition_name
        );
        execute format(
            'with moved as (delete from training_metrics_default where recorded_at >= %L and recorded_at < %L returning *)
             insert into %I select * from moved',
            month_start, month_start + interval '1 month', partition_name
        );
        execute format(
            'alter table training_metrics attach partition %I for values from (%L) to (%L)',
            partition_name, month_start, month_start + interval '1 month'
        );
        return next partition_name;
    end loop;
end
$fn$;
{%- endmacro %}


{% macro helper_purge_expired_cache() -%}
-- Deletes up to batch_size expired rows from activation_cache and kv_cache per call and returns how
-- many went. Short batches keep locks brief; callers loop (and commit) until it returns 0.
create or replace function {{ target.schema }}.purge_expired_cache_batch(batch_size integer default 5000)
returns table (cache_table text, purged bigint)
language plpgsql
set search_path = {{ target.schema }}, pg_temp
as $fn$
begin
    return query
    with doomed as (
        select ctid from activation_cache
        where expires_at <= now()
        order by expires_at
        limit batch_size
        for update skip locked
    ), gone as (
        delete from activation_cache where ctid in (select ctid from doomed) returning 1
    )
    select 'activation_cache'::text, count(*) from gone;

    return query
    with doomed as (
        select ctid from kv_cache
        where expires_at <= now()
        order by expires_at
        limit batch_size
        for update skip locked
    ), gone as (
        delete from kv_cache where ctid in (select ctid from doomed) returning 1
    )
    select 'kv_cache'::text, count(*) from gone;
end
$fn$;
{%- endmacro %}


{% macro helper_check_tenant_references() -%}
-- What a composite foreign key on (tenant_id, column) checks, for columns no foreign key can cover: a
-- uuid[] or a jsonb holding ids (object values or array elements), or a column checked per statement on
-- insert elsewhere. Row trigger, arguments: column, referenced table, referenced column. Every id must
-- be a row of the new row's own tenant, locked FOR KEY SHARE as a foreign key would; another tenant's id
-- fails exactly like an id that exists nowhere (same error, constraint and wording). Created per column
-- by the tenant_reference_triggers() post-hook from the contract's `meta: {references: table.column}`.
create or replace function {{ target.schema }}.check_tenant_references()
returns trigger
language plpgsql
set search_path = {{ target.schema }}, pg_temp
as $fn$
declare
    column_name text := tg_argv[0];
    target_table text := tg_argv[1];
    target_column text := tg_argv[2];
    value jsonb := to_jsonb(new) -> column_name;
    -- A partition's row is reported under its partitioned table, as a foreign key on the parent would be.
    table_name text := coalesce((select parent.relname from pg_inherits join pg_class as parent on parent.oid = inhparent
                                 where inhrelid = tg_relid), tg_table_name);
    ids uuid[];
    present integer;
    missing text;
begin
    if tg_op = 'UPDATE' and value is not distinct from to_jsonb(old) -> column_name
       and new.tenant_id is not distinct from old.tenant_id then
        return new;
    end if;
    begin
        ids := case jsonb_typeof(value)
            when 'string' then array[(value #>> '{}')::uuid]
            when 'array' then (select array_agg(distinct element::uuid) from jsonb_array_elements_text(value) as element)
            when 'object' then (select array_agg(distinct element.value::uuid) from jsonb_each_text(value) as element)
        end;
    exception when invalid_text_representation or null_value_not_allowed then
        missing := value::text;
    end;
    if missing is null and coalesce(cardinality(ids), 0) > 0 then
        execute format('select count(*) from (select from %I where tenant_id = $1 and %I = any($2) for key share) as found',
                       target_table, target_column)
            into present using new.tenant_id, ids;
        if present < cardinality(ids) then
            execute format('select id::text from unnest($2) as id where not exists'
                           ' (select from %I where tenant_id = $1 and %I = id) order by 1 limit 1', target_table, target_column)
                into missing using new.tenant_id, ids;
        end if;
    end if;
    if missing is not null then
        raise foreign_key_violation using
            message = format('insert or update on table "%s" violates foreign key constraint "%s"',
                             table_name, table_name || '_' || column_name || '_fkey'),
            detail = format('Key (tenant_id, %s)=(%s, %s) is not present in table "%s".',
                            column_name, new.tenant_id, missing, target_table),
            constraint = table_name || '_' || column_name || '_fkey',
            table = table_name;
    end if;
    return new;
end
$fn$;
{%- endmacro %}


{% macro helper_external_uri_allowed() -%}
-- Whether an external tensor URI lies under a store this database is configured to use (external_stores):
-- below a registered prefix, with no dot segment, query, fragment, credentials, backslash or escaped
-- separator that could lead a reader out of it. plpgsql: external_stores may not exist yet on-run-start.
create or replace function {{ target.schema }}.external_uri_allowed(uri text)
returns boolean
language plpgsql stable
set search_path = {{ target.schema }}, pg_temp
as $fn$
begin
    return uri !~ '(/\.\.?(/|$))|[?#@\\]' and uri !~* '%(2e|2f|5c|00)'
        and exists (select from external_stores where starts_with(uri, uri_prefix || '/'));
end
$fn$;

-- tensor_metadata.external_uri must satisfy external_uri_allowed: a tenant cannot point a tensor at a
-- file of the reading machine (/etc/shadow) and learn from the read error whether it exists.
create or replace function {{ target.schema }}.tensor_metadata_external_uri_check()
returns trigger
language plpgsql
set search_path = {{ target.schema }}, pg_temp
as $fn$
begin
    if new.external_uri is not null and not external_uri_allowed(new.external_uri) then
        raise check_violation using
            constraint = 'tensor_metadata_external_uri_check', table = tg_table_name, schema = tg_table_schema,
            message = 'new row for relation "tensor_metadata" violates check constraint "tensor_metadata_external_uri_check": '
                || 'external_uri is not under a store this database is configured to use (external_stores); '
                || 'the schema owner registers stores';
    end if;
    return new;
end
$fn$;
{%- endmacro %}
