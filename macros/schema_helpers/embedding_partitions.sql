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
-- Partition and load-table names are opaque (embeddings_p + 16 random hex digits), so pg_class,
-- pg_indexes and pg_constraint never show a model's or a tenant's id; a model's table is found in the
-- catalog instead: the attached partition whose bound is the model, else a load in flight (a detached
-- embeddings_p table whose <name>_model_check pins the model). NULL when there is neither.
create or replace function {{ s }}.embedding_partition_of(model uuid)
returns regclass
language sql stable strict
set search_path = {{ s }}, pg_temp
as $fn$
    select coalesce(
        (select child.oid::regclass from pg_inherits join pg_class as child on child.oid = inhrelid
         where inhparent = to_regclass('embeddings')
           and pg_get_expr(child.relpartbound, child.oid) = format('FOR VALUES IN (%L)', model)),
        (select load.oid::regclass
         from pg_class as load join pg_constraint as model_check on model_check.conrelid = load.oid
         where load.relnamespace = (select relnamespace from pg_class where oid = to_regclass('embeddings'))
           and load.relkind = 'r' and not load.relispartition and load.relname like 'embeddings\_p%'
           and model_check.contype = 'c' and model_check.conname = load.relname || '_model_check'
           and pg_get_constraintdef(model_check.oid) = format('CHECK ((model_id = %L::uuid))', model)))
$fn$;

-- The name of embedding_partition_of(model), for callers that want text.
create or replace function {{ s }}.embedding_partition_name(model uuid)
returns text
language sql stable strict
set search_path = {{ s }}, pg_temp
as $fn$ select embedding_partition_of(model)::text $fn$;

-- A fresh opaque relation name for a model's partition.
create or replace function {{ s }}.embedding_partition_new_name()
returns text
language sql volatile
as $fn$ select 'embeddings_p' || left(replace(gen_random_uuid()::text, '-', ''), 16) $fn$;

-- The tenant a row gets by default: the caller's, 'default' when none is set.
create or replace function {{ s }}.embedding_partition_tenant()
returns text
language sql stable
as $fn$ select {{ current_tenant_or_default() }} $fn$;

-- Refuses a model the caller's tenant does not own, or none at all.
create or replace function {{ s }}.embedding_partition_check_model(model uuid)
returns void
language plpgsql
set search_path = {{ s }}, pg_temp
as $fn$
begin
    if not exists (select from models where model_id = model and tenant_id = embedding_partition_tenant()) then
        raise foreign_key_violation using
            message = format('model %s does not exist for this tenant; register the model before its embeddings', model),
            constraint = 'embeddings_model_width_fkey', table = 'embeddings';
    end if;
end
$fn$;

-- A detached table shaped like embeddings, holding only `model`'s rows (a check says so, which also
-- spares the attach a scan), under an opaque name. Returns its name.
create or replace function {{ s }}.embedding_partition_create(model uuid)
returns text
language plpgsql
set search_path = {{ s }}, pg_temp
as $fn$
declare
    partition_name text := embedding_partition_new_name();
begin
    if embedding_partition_of(model) is not null then
        raise unique_violation using
            message = format('embeddings of model %s are already loaded; delete the model to load them again', model),
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

-- Renames partitions a build before opaque names left named after their model (embeddings_<model id
-- hex>), with their indexes and constraints; every build runs it (split_embedding_partitions).
create or replace function {{ s }}.embedding_partitions_make_opaque()
returns setof text
language plpgsql
set search_path = {{ s }}, pg_temp
as $fn$
declare
    old_name text;
    new_name text;
    item record;
begin
    for old_name in
        select child.relname from pg_inherits join pg_class as child on child.oid = inhrelid
        where inhparent = 'embeddings'::regclass and child.relname ~ '^embeddings_[0-9a-f]{32}$'
    loop
        new_name := embedding_partition_new_name();
        for item in
            select index.relname from pg_index join pg_class as index on index.oid = indexrelid
            where indrelid = old_name::regclass and index.relname like old_name || '%'
              and not exists (select from pg_constraint where conindid = indexrelid and conrelid = indrelid)
        loop
            execute format('alter index %I rename to %I', item.relname, new_name || substr(item.relname, length(old_name) + 1));
        end loop;
        for item in
            select conname from pg_constraint where conrelid = old_name::regclass and conname like old_name || '%'
        loop
            execute format('alter table %I rename constraint %I to %I', old_name, item.conname,
                           new_name || substr(item.conname, length(old_name) + 1));
        end loop;
        execute format('alter table %I rename to %I', old_name, new_name);
        return next new_name;
    end loop;
end
$fn$;

-- Builds the partition's indexes in bulk, then attaches it: the same definitions as the partitioned
-- indexes (so the attach adopts them instead of building its own), bar constraint indexes, which the
-- attach builds (btree, quick). The HNSW index is not among them: it is built after the commit. First
-- every row must be `model`'s and of the model's tenant, whoever wrote it: refused in one line otherwise,
-- nothing attached. Returns the partition's row count.
create or replace function {{ s }}.embedding_partition_attach(model uuid, partition_name text)
returns bigint
language plpgsql
set search_path = {{ s }}, pg_temp
as $fn$
declare
    model_tenant text := (select tenant_id from models where model_id = model);
    row_count bigint;
    stray_rows bigint;
    definition text;
    index_name text;
begin
    execute format('select count(*), count(*) filter (where model_id is distinct from %L or tenant_id is distinct from %L)'
                   ' from %I', model, model_tenant, partition_name)
        into row_count, stray_rows;
    if stray_rows > 0 then
        raise integrity_constraint_violation using
            message = format('embedding load of model %s holds %s rows of another model or tenant; nothing was attached',
                             model, stray_rows);
    end if;
    -- Each index is named after its partitioned index: embeddings_p<hex>_model_id_embedding_type_token_text_idx.
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
drop function if exists {{ s }}.embedding_partition_attach(uuid);

-- Step 1 of a bulk load: the caller may then COPY `model`'s rows into the returned table. Only the login
-- that began the load may insert, and only rows of its own tenant for a model of that tenant (a policy,
-- whether or not row-level security is on elsewhere); the attach checks every row again.
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
    execute format('alter table %I enable row level security', partition_name);
    execute format($policy$create policy %I on %I for insert with check (
                       tenant_id = %I.embedding_partition_tenant()
                       and exists (select from %I.models as owner
                                   where owner.model_id = %I.model_id and owner.tenant_id = %I.tenant_id))$policy$,
                   partition_name || '_tenant_load', partition_name, '{{ s }}', '{{ s }}', partition_name, partition_name);
    if session_user <> current_user then
        execute format('grant insert on %I to %I', partition_name, session_user);
    end if;
    return partition_name;
end
$fn$;

-- Step 2: check, index and attach; from here on the rows are reachable only through embeddings (and
-- its row-level security). Returns the number of rows loaded.
create or replace function {{ s }}.finish_embedding_load(model uuid)
returns bigint
language plpgsql
security definer
set search_path = {{ s }}, pg_temp
as $fn$
declare
    partition regclass;
    grantee text;
begin
    perform embedding_partition_check_model(model);
    partition := embedding_partition_of(model);
    if partition is null or exists (select from pg_inherits where inhrelid = partition) then
        raise object_not_in_prerequisite_state using
            message = format('no embedding load of model %s in progress; call begin_embedding_load first', model);
    end if;
    for grantee in select distinct privilege.grantee from information_schema.role_table_grants as privilege
                   where privilege.table_schema = '{{ s }}' and privilege.table_name = partition::text
                     and privilege.grantee <> current_user loop
        execute format('revoke all on %s from %I', partition, grantee);
    end loop;
    execute format('drop policy %I on %s', partition::text || '_tenant_load', partition);
    execute format('alter table %s disable row level security', partition);
    return embedding_partition_attach(model, partition::text);
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
    perform embedding_partitions_make_opaque();
    for model in select distinct model_id from embeddings_default order by 1 loop
        partition_name := embedding_partition_create(model);
        execute format(
            'with moved as (delete from embeddings_default where model_id = %L returning *) insert into %I select * from moved',
            model, partition_name);
        perform embedding_partition_attach(model, partition_name);
        return next model;
    end loop;
end
$fn$;

-- Only the owner's functions call these (an application calls begin/finish_embedding_load); finding a
-- partition by model would tell another tenant which model ids exist.
revoke execute on function {{ s }}.embedding_partition_create(uuid), {{ s }}.embedding_partition_attach(uuid, text),
    {{ s }}.embedding_partitions_make_opaque(), {{ s }}.split_embedding_partitions(),
    {{ s }}.embedding_partition_of(uuid), {{ s }}.embedding_partition_name(uuid),
    {{ s }}.embedding_partition_new_name(), {{ s }}.embedding_partition_check_model(uuid) from public;
{%- endmacro %}
