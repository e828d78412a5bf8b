{#-
    Embeddings are list-partitioned by model. A model's rows are loaded into a table of their own that
    no reader can see (not yet attached), its btree indexes are built in bulk once the rows are there,
    and the table is attached as the model's partition in the same transaction: the model is visible
    and exactly searchable when the load commits. Its approximate (HNSW) index is the partition's own,
    chosen from its width and size and built afterwards with CREATE INDEX CONCURRENTLY
    (arc_halo.embeddings.build_index), so no load waits for it. The default partition catches rows written straight into `embeddings`;
    split_embedding_partitions() (run by every build) moves them into partitions of their own.
    The load functions are SECURITY DEFINER because creating, indexing and attaching a partition needs the
    table's owner; they only act for a model of the caller's tenant.
-#}

{% macro helper_embedding_partitions() -%}
{%- set s = target.schema -%}
-- The partition table of a model's embeddings.
create or replace function {{ s }}.embedding_partition_name(model uuid)
returns text
language sql immutable strict parallel safe
as $fn$ select 'embeddings_' || replace(model::text, '-', '') $fn$;

-- Refuses a model the caller's tenant does not own (the tenant a row gets by default), or none at all.
create or replace function {{ s }}.embedding_partition_check_model(model uuid)
returns void
language plpgsql
set search_path = {{ s }}, pg_temp
as $fn$
begin
    if not exists (
        select from models
        where model_id = model and tenant_id = coalesce(nullif(current_setting('app.tenant_id', true), ''), 'default')
    ) then
        raise foreign_key_violation using
            message = format('model %s does not exist for this tenant; register the model before its embeddings', model),
            constraint = 'embeddings_model_width_fkey', table = 'embeddings';
    end if;
end
$fn$;

-- A detached table shaped like embeddings, holding only `model`'s rows (a check says so, which also
-- spares the attach a scan). Returns its name.
create or replace function {{ s }}.embedding_partition_create(model uuid)
returns text
language plpgsql
set search_path = {{ s }}, pg_temp
as $fn$
declare
    partition_name text := embedding_partition_name(model);
begin
    if to_regclass(partition_name) is not null then
        raise unique_violation using
            message = format('embeddings of model %s are already loaded (%s); delete the model to load them again', model, partition_name),
            constraint = 'embeddings_model_type_index_key', table = 'embeddings';
    end if;
    execute format('create table %I (like embeddings including defaults including constraints)', partition_name);
    execute format('alter table %I add constraint %I check (model_id = %L)', partition_name, partition_name || '_model_check', model);
    -- Vectors up to ~2,000 dimensions stay in the row (pgvector's default storage moves any over ~2 KB
    -- out of line): an exact scan and an index build then read no TOAST.
    execute format('alter table %I alter column embedding set storage main', partition_name);
    return partition_name;
end
$fn$;

-- Builds the partition's indexes in bulk, then attaches it: the same definitions as the partitioned
-- indexes (so the attach adopts them instead of building its own), bar constraint indexes, which the
-- attach builds (btree, quick). The HNSW index is not among them: it is built after the commit.
-- Returns the partition's row count.
create or replace function {{ s }}.embedding_partition_attach(model uuid)
returns bigint
language plpgsql
set search_path = {{ s }}, pg_temp
as $fn$
declare
    partition_name text := embedding_partition_name(model);
    row_count bigint;
    definition text;
    index_name text;
begin
    execute format('select count(*) from %I', partition_name) into row_count;
    -- Each index is named after its partitioned index: embeddings_<model>_model_id_embedding_type_token_text_idx.
    for definition, index_name in
        select pg_get_indexdef(index.indexrelid), class.relname
        from pg_index as index
        join pg_class as class on class.oid = index.indexrelid
        where index.indrelid = 'embeddings'::regclass
          and not exists (select from pg_constraint where conindid = index.indexrelid)
    loop
        execute regexp_replace(definition, '^CREATE (UNIQUE )?INDEX \S+ ON ONLY \S+',
                               'CREATE \1INDEX ' || quote_ident(left(partition_name || substr(index_name, 11), 63))
                               || ' ON ' || quote_ident(partition_name));
    end loop;
    execute format('alter table embeddings attach partition %I for values in (%L)', partition_name, model);
    execute format('analyze %I', partition_name);  -- else the first nearest-neighbour queries scan everything
    return row_count;
end
$fn$;

-- Step 1 of a bulk load: the caller (arc_halo_app) may then COPY `model`'s rows into the returned table.
create or replace function {{ s }}.begin_embedding_load(model uuid)
returns text
language plpgsql
security definer
set search_path = {{ s }}, pg_temp
as $fn$
declare
    partition_name text;
begin
    perform embedding_partition_check_model(model);
    if exists (select from embeddings where model_id = model) then
        raise unique_violation using
            message = format('model %s already has embeddings; delete the model to load them again', model),
            constraint = 'embeddings_model_type_index_key', table = 'embeddings';
    end if;
    partition_name := embedding_partition_create(model);
    if exists (select from pg_roles where rolname = 'arc_halo_app') then
        execute format('grant insert on %I to arc_halo_app', partition_name);
    end if;
    return partition_name;
end
$fn$;

-- Step 2: index and attach; from here on the rows are reachable only through embeddings (and its
-- row-level security). Returns the number of rows loaded.
create or replace function {{ s }}.finish_embedding_load(model uuid)
returns bigint
language plpgsql
security definer
set search_path = {{ s }}, pg_temp
as $fn$
declare
    partition_name text := embedding_partition_name(model);
begin
    perform embedding_partition_check_model(model);
    if to_regclass(partition_name) is null
       or exists (select from pg_inherits where inhrelid = to_regclass(partition_name)) then
        raise object_not_in_prerequisite_state using
            message = format('no embedding load of model %s in progress; call begin_embedding_load first', model);
    end if;
    if exists (select from pg_roles where rolname = 'arc_halo_app') then
        execute format('revoke all on %I from arc_halo_app', partition_name);
    end if;
    return embedding_partition_attach(model);
end
$fn$;

-- Moves every model's rows out of the default partition into a partition of its own, in the caller's
-- transaction (no row is ever outside embeddings). Returns the models moved.
create or replace function {{ s }}.split_embedding_partitions()
returns setof uuid
language plpgsql
set search_path = {{ s }}, pg_temp
as $fn$
declare
    model uuid;
    partition_name text;
begin
    for model in select distinct model_id from embeddings_default order by 1 loop
        partition_name := embedding_partition_create(model);
        execute format(
            'with moved as (delete from embeddings_default where model_id = %L returning *) insert into %I select * from moved',
            model, partition_name);
        perform embedding_partition_attach(model);
        return next model;
    end loop;
end
$fn$;

revoke execute on function {{ s }}.embedding_partition_create(uuid), {{ s }}.embedding_partition_attach(uuid),
    {{ s }}.split_embedding_partitions() from public;
{%- endmacro %}
