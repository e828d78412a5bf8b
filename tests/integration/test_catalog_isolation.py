"""Issue 18 §7: tenant isolation checked from the catalog, so a new table, column, view, function or
partition is attacked without anyone writing a test for it.

Everything to attack is listed from the catalog of an RLS-on build holding one of everything for tenants
A and B (rows.insert_everything) plus a model bulk-loaded by a third tenant: every relation (tables,
partitions, views), every column that holds an id (uuid, uuid[], jsonb), every function and every
privilege of arc_halo_app. Tenant B, through an application login, then tries to read, insert, update,
delete and link to A's rows. Example-based attacks stay in test_tenant_isolation.py (whose helpers this
reuses).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from arc_halo import db, embeddings
from rows import insert_model
from test_tenant_isolation import failure, tenant

APP_ROLE = "arc_halo_app"
SCHEMAS = ("public", "analytics", "reference")
# A tenant whose name is distinctive enough to be searched for in every relation name.
LOADING_TENANT = f"tenant_{uuid.uuid4().hex[:12]}"

# Columns that hold an id of no row (so there is nothing to link to), with why. Every other uuid column
# must be covered by a composite foreign key on (tenant_id, column) or a check_tenant_references trigger.
NOT_REFERENCES = {
    ("tensor_metadata", "pending_upload_id"): "the random id of a parallel upload in flight, not of a row",
}
# jsonb columns the application fills with free-form settings and values, never dereferenced as ids.
# A jsonb column that holds ids declares `meta: {references: ...}` in its contract (a trigger checks it).
FREE_FORM_JSONB = {
    ("models", "config"), ("transformer_layers", "config"), ("training_sessions", "hyperparameters"),
    ("model_checkpoints", "metrics"), ("optimizer_state", "hyperparameters"), ("gradient_checkpoints", "config"),
    ("inference_sessions", "generation_config"), ("cognitive_fusion_reactors", "config"),
    ("fusion_operations", "output_summary"), ("cognitive_state", "state"),
    ("models", "safetensors_metadata"),  # the imported file's safetensors header and __metadata__
}


@dataclass(frozen=True)
class Relation:
    oid: int
    name: str
    kind: str                  # pg_class.relkind
    is_partition: bool
    has_tenant: bool
    row_security: bool
    policies: tuple[str, ...]  # polcmd of each policy whose expressions compare tenant_id with app.tenant_id
    app_privileges: frozenset[str]

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.name)


@dataclass(frozen=True)
class IdColumn:
    table: str
    column: str
    type: str                     # uuid, uuid[] or jsonb
    references: tuple[str, str] | None  # (table, column) a tenant-scoped foreign key or trigger checks


@dataclass
class Catalog:
    schema: str
    relations: list[Relation]
    id_columns: list[IdColumn]
    functions: list[tuple[int, str, list[str], bool, list[str] | None]]  # oid, name, arg types, definer, config

    def relation(self, name: str) -> Relation:
        return next(item for item in self.relations if item.name == name)


RELATIONS = """
    select c.oid, c.relname, c.relkind, c.relispartition,
           exists (select from pg_attribute where attrelid = c.oid and attname = 'tenant_id' and not attisdropped),
           c.relrowsecurity,
           array(select p.polcmd::text from pg_policy as p
                 where p.polrelid = c.oid
                   and coalesce(pg_get_expr(p.polqual, p.polrelid), '') || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
                       ~ 'tenant_id = (current_setting\\(''app.tenant_id''|embedding_partition_tenant)'),
           array(select privilege from unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES',
                                                    'TRIGGER']) as privilege
                 where has_table_privilege(%(role)s, c.oid, privilege))
    from pg_class as c
    where c.relnamespace = any(array(select oid from pg_namespace where nspname = any(%(schemas)s)))
      and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
    order by c.relname"""

# Every uuid / uuid[] / jsonb column of a table with tenant_id, bar its own key (primary key columns that
# reference nothing), with what checks it: a foreign key on (tenant_id, column), or a check_tenant_references
# trigger.
ID_COLUMNS = """
    select c.relname, a.attname, format_type(a.atttypid, null),
           coalesce(
               (select array[target.relname::text, target_column.attname::text]
                from pg_constraint as fk
                join pg_class as target on target.oid = fk.confrelid
                join pg_attribute as tenant_column on tenant_column.attrelid = fk.conrelid and tenant_column.attname = 'tenant_id'
                join pg_attribute as target_column on target_column.attrelid = fk.confrelid
                     and target_column.attnum = fk.confkey[array_position(fk.conkey, a.attnum)]
                where fk.conrelid = c.oid and fk.contype = 'f' and a.attnum = any(fk.conkey)
                  and tenant_column.attnum = any(fk.conkey) and fk.convalidated
                limit 1),
               (select array[args[2], args[3]]
                from pg_trigger as t,
                     lateral (select string_to_array(rtrim(encode(t.tgargs, 'escape'), E'\\\\000'), E'\\\\000') as args) as parsed
                where t.tgrelid = c.oid and not t.tgisinternal and t.tgenabled <> 'D'
                  and t.tgfoid = to_regproc('check_tenant_references')::oid and args[1] = a.attname
                limit 1))
    from pg_class as c
    join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    where c.relnamespace = to_regnamespace(current_schema())::oid and c.relkind in ('r', 'p') and not c.relispartition
      and exists (select from pg_attribute where attrelid = c.oid and attname = 'tenant_id')
      and format_type(a.atttypid, null) in ('uuid', 'uuid[]', 'jsonb')
      and (not exists (select from pg_index where indrelid = c.oid and indisprimary and a.attnum = any(indkey))
          or exists (select from pg_constraint where conrelid = c.oid and contype = 'f' and a.attnum = any(conkey)))
    order by 1, 2"""

FUNCTIONS = """
    select p.oid, p.proname, array(select format_type(t, null) from unnest(p.proargtypes::oid[]) as t),
           p.prosecdef, p.proconfig
    from pg_proc as p
    where p.pronamespace = any(array(select oid from pg_namespace where nspname = any(%(schemas)s)))
      and p.prokind = 'f' and p.prorettype <> 'trigger'::regtype
      and not exists (select from pg_depend where objid = p.oid and deptype = 'e')
      and has_function_privilege(%(role)s, p.oid, 'execute')
    order by p.proname"""


def read_catalog(conn: psycopg.Connection) -> Catalog:
    params = {"role": APP_ROLE, "schemas": list(SCHEMAS)}
    relations = [Relation(oid, name, kind, part, has_tenant, rls, tuple(policies), frozenset(privileges))
                 for oid, name, kind, part, has_tenant, rls, policies, privileges in conn.execute(RELATIONS, params)]
    id_columns = [IdColumn(table, column, kind, tuple(refs) if refs else None)
                  for table, column, kind, refs in conn.execute(ID_COLUMNS)]
    functions = conn.execute(FUNCTIONS, params).fetchall()
    return Catalog(conn.execute("select current_schema()").fetchone()[0], relations, id_columns, functions)


@dataclass
class Target:
    owner_url: str
    app_url: str
    catalog: Catalog
    ids_of_a: set[str]          # every uuid that appears in any of A's rows
    all_ids: set[str]           # every uuid in the database, any tenant


def every_uuid(conn: psycopg.Connection, catalog: Catalog, tenant_name: str | None) -> set[str]:
    """Every uuid in any uuid, uuid[] or jsonb column of the tables (of one tenant, or of all)."""
    found: set[str] = set()
    pattern = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    for relation in catalog.relations:
        if relation.kind not in ("r", "p") or relation.is_partition or not relation.has_tenant:
            continue
        query = sql.SQL("select to_jsonb(t)::text from {} as t").format(relation.ident)
        if tenant_name is not None:
            query += sql.SQL(" where tenant_id = {}").format(tenant_name)
        for (text,) in conn.execute(query):
            found.update(pattern.findall(text))
    return found


@pytest.fixture(scope="module")
def target(test_server, rls_tenants_template, app_login) -> Iterator[Target]:
    template, _ = rls_tenants_template
    name = test_server.create_database(template=template)
    try:
        owner_url = test_server.url(name)
        app_url = make_conninfo(owner_url, user=app_login)
        # A third tenant loads embeddings the way applications do, so the catalog holds a partition made by
        # a bulk load (and its indexes and constraints) as well as the default partition's split-outs.
        with db.connect(app_url, tenant=LOADING_TENANT) as conn:
            model_id = insert_model(conn, "bulk-loaded", hidden=8, heads=2)
            vectors = np.random.default_rng(7).standard_normal((40, 8)).astype(np.float32)
            embeddings.bulk_load(conn, model_id, [("token", vectors, None)])
            conn.commit()
        with psycopg.connect(owner_url) as owner:
            owner.execute("select count(*) from split_embedding_partitions()")  # what every build does
            owner.commit()
            catalog = read_catalog(owner)
            yield Target(owner_url, app_url, catalog, every_uuid(owner, catalog, "A"), every_uuid(owner, catalog, None))
    finally:
        test_server.drop_database(name)


def owner_snapshot(url: str, catalog: Catalog, tenant_name: str) -> dict[str, list[str]]:
    """Every row of one tenant in every table, as text, as the owner sees them (no policies)."""
    with psycopg.connect(url) as owner:
        return {relation.name: sorted(row[0] for row in owner.execute(
                    sql.SQL("select to_jsonb(t)::text from {} as t where tenant_id = %s").format(relation.ident), (tenant_name,)))
                for relation in catalog.relations
                if relation.kind in ("r", "p") and not relation.is_partition and relation.has_tenant}


# ---- names --------------------------------------------------------------------------------------------

def test_no_relation_index_constraint_or_function_name_holds_an_id(target: Target) -> None:
    assert len(target.all_ids) > 30  # every table's ids, and the bulk-loaded model's
    secrets = {value for value in target.all_ids} | {value.replace("-", "") for value in target.all_ids}
    secrets |= {value.replace("-", "")[:16] for value in target.all_ids} | {LOADING_TENANT}
    with psycopg.connect(target.owner_url) as owner:
        names = owner.execute(
            """select 'relation', relname from pg_class
               union all select 'constraint', conname from pg_constraint
               union all select 'index', indexname from pg_indexes
               union all select 'trigger', tgname from pg_trigger
               union all select 'policy', polname from pg_policy
               union all select 'function', proname from pg_proc
               union all select 'sequence', sequencename from pg_sequences""").fetchall()
        partitions = owner.execute("select count(*) from pg_inherits where inhparent = 'embeddings'::regclass").fetchone()[0]
    assert partitions >= 4  # the default, A's, B's and the bulk-loaded model's
    leaking = [(kind, name) for kind, name in names if any(secret in name.lower() for secret in secrets)]
    assert leaking == []


# ---- privileges and policies --------------------------------------------------------------------------

def test_every_relation_the_app_can_touch_is_tenant_scoped(target: Target) -> None:
    """From the catalog: a relation with tenant_id the app may read or write has the tenant policy for
    every command (or is a view that runs with the caller's rights over such tables); one without
    tenant_id is reference data, read-only; partitions and sequences are reached only through their table."""
    problems = []
    for relation in target.catalog.relations:
        privileges = relation.app_privileges
        if not privileges:
            continue
        if relation.is_partition or relation.kind == "S":
            problems.append(f"{relation.name}: the app holds {sorted(privileges)} on a partition or sequence")
        elif relation.kind in ("r", "p") and relation.has_tenant:
            if not relation.row_security or "*" not in relation.policies:
                problems.append(f"{relation.name}: writable by the app {sorted(privileges)} without the tenant policy")
        elif relation.kind in ("r", "p"):
            if privileges - {"SELECT"}:
                problems.append(f"{relation.name}: reference data, but the app holds {sorted(privileges)}")
        if privileges & {"TRUNCATE", "REFERENCES", "TRIGGER"}:
            problems.append(f"{relation.name}: the app holds {sorted(privileges & {'TRUNCATE', 'REFERENCES', 'TRIGGER'})}")
    with psycopg.connect(target.owner_url) as owner:
        views = owner.execute(
            """select c.relname from pg_class as c
               where c.relnamespace = to_regnamespace(current_schema())::oid and c.relkind = 'v'
                 and has_table_privilege(%s, c.oid, 'SELECT')
                 and not coalesce('security_invoker=true' = any(c.reloptions), false)""", (APP_ROLE,)).fetchall()
        problems += [f"{view}: a view the app reads with its owner's rights" for (view,) in views]
        schemas = owner.execute("select nspname from pg_namespace where has_schema_privilege(%s, oid, 'CREATE')"
                                " and nspname not like 'pg\\_temp%%' and nspname not like 'pg\\_toast%%'",
                                (APP_ROLE,)).fetchall()
        problems += [f"schema {schema}: the app may create objects in it" for (schema,) in schemas]
    assert problems == []


def test_security_definer_functions_the_app_can_call_pin_their_search_path(target: Target) -> None:
    unpinned = [name for _, name, _, definer, config in target.catalog.functions
                if definer and not any(setting.startswith("search_path=") for setting in config or [])]
    assert unpinned == []


# ---- reading ------------------------------------------------------------------------------------------

def test_no_relation_shows_tenant_b_any_of_tenant_as_ids(target: Target) -> None:
    """Every relation B may select (tables, partitions, views, reference data): no row holds any id of A's."""
    assert len(target.ids_of_a) > 20
    readable = [relation for relation in target.catalog.relations if "SELECT" in relation.app_privileges]
    assert {"models", "embeddings", "v_model_architecture"} <= {relation.name for relation in readable}
    seen_own = False
    with psycopg.connect(target.app_url) as conn:
        tenant(conn, "B")
        for relation in readable:
            rows = conn.execute(sql.SQL("select to_jsonb(t)::text from {} as t").format(relation.ident)).fetchall()
            leaked = {value for (text,) in rows for value in target.ids_of_a if value in text}
            assert leaked == set(), relation.name
            seen_own = seen_own or bool(rows)
    assert seen_own  # B does see its own rows: the check is not vacuous


# ---- writing ------------------------------------------------------------------------------------------

def writable_tables(catalog: Catalog) -> list[Relation]:
    return [relation for relation in catalog.relations
            if relation.kind in ("r", "p") and not relation.is_partition and relation.has_tenant
            and relation.app_privileges & {"INSERT", "UPDATE", "DELETE"}]


def insertable_columns(conn: psycopg.Connection, table: str) -> list[str]:
    return [name for (name,) in conn.execute(
        """select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped
             and attgenerated = '' and attidentity <> 'a' order by attnum""", (table,))]


def primary_key(conn: psycopg.Connection, table: str) -> list[tuple[str, str]]:
    return conn.execute(
        """select a.attname, format_type(a.atttypid, null) from pg_index as i
           join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
           where i.indrelid = %s::regclass and i.indisprimary""", (table,)).fetchall()


def own_row(conn: psycopg.Connection, table: str) -> dict:
    row = conn.execute(sql.SQL("select to_jsonb(t) from {} as t limit 1").format(sql.Identifier(table))).fetchone()
    assert row, f"tenant B has no row in {table}: add one to rows.insert_everything so the table is attacked"
    return row[0]


def insert_copy(conn: psycopg.Connection, table: str, row: dict, columns: list[str]) -> None:
    """Insert `row` (a dict of column values) into `table`, through jsonb_populate_record."""
    names = sql.SQL(", ").join(sql.Identifier(column) for column in columns)
    conn.execute(sql.SQL("insert into {table} ({names}) select {names} from jsonb_populate_record(null::{table}, %s)")
                 .format(table=sql.Identifier(table), names=names), (json.dumps(row),))


def test_no_insert_update_or_delete_reaches_tenant_a(target: Target) -> None:
    """For every table the app may write: B cannot insert a row as A, move its row to A, nor update or
    delete any of A's rows; afterwards A's rows are byte for byte what they were."""
    before = owner_snapshot(target.owner_url, target.catalog, "A")
    tables = writable_tables(target.catalog)
    assert len(tables) >= 25
    with psycopg.connect(target.app_url) as conn:
        tenant(conn, "B")
        for relation in tables:
            table = relation.name
            assert conn.execute(sql.SQL("update {} set tenant_id = tenant_id where tenant_id = 'A'")
                                .format(relation.ident)).rowcount == 0, table
            assert conn.execute(sql.SQL("delete from {} where tenant_id = 'A'").format(relation.ident)).rowcount == 0, table
            error = failure(conn, sql.SQL("update {} set tenant_id = 'A'").format(relation.ident).as_string(conn))
            assert isinstance(error, (psycopg.errors.InsufficientPrivilege, psycopg.errors.ForeignKeyViolation)), (table, error)
            row = own_row(conn, table)
            row["tenant_id"] = "A"
            for key, kind in primary_key(conn, table):
                if kind == "uuid":
                    row[key] = str(uuid.uuid4())
            conn.execute("savepoint attempt")
            with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.ForeignKeyViolation)):
                insert_copy(conn, table, row, insertable_columns(conn, table))
            conn.execute("rollback to savepoint attempt")
        conn.commit()
    assert owner_snapshot(target.owner_url, target.catalog, "A") == before


# ---- links --------------------------------------------------------------------------------------------

def test_every_column_holding_ids_is_checked_against_the_rows_tenant(target: Target) -> None:
    """From the catalog: every uuid, uuid[] and jsonb column of a tenant table is covered by a composite
    foreign key on (tenant_id, column) or a check_tenant_references trigger, or is listed above as holding
    no row's id. A new column fails here until it is one of these."""
    found = {(column.table, column.column) for column in target.catalog.id_columns}
    assert {("fusion_operations", "contributing_model_ids"), ("model_checkpoints", "weight_tensors"),
            ("training_metrics", "training_session_id")} <= found
    unchecked = [(column.table, column.column, column.type) for column in target.catalog.id_columns
                 if column.references is None and (column.table, column.column) not in NOT_REFERENCES
                 and (column.type != "jsonb" or (column.table, column.column) not in FREE_FORM_JSONB)]
    assert unchecked == []
    assert set(NOT_REFERENCES) | FREE_FORM_JSONB <= found  # nothing listed that no longer exists


def id_value(kind: str, value: str):
    """`value` in the shape of a column of type `kind`."""
    return {"uuid": value, "uuid[]": [value], "jsonb": {"w": value}}[kind]


def linked_columns(catalog: Catalog) -> list[IdColumn]:
    return [column for column in catalog.id_columns if column.references is not None]


def attempt(conn: psycopg.Connection, statement, params) -> psycopg.Error | None:
    """The error of one statement that must change exactly one row (None if it did), undone either way."""
    conn.execute("savepoint attempt")
    try:
        changed = conn.execute(statement, params).rowcount
    except psycopg.Error as error:
        conn.execute("rollback to savepoint attempt")
        return error
    conn.execute("rollback to savepoint attempt")
    assert changed == 1, statement
    return None


def scrubbed(error: psycopg.Error, values: list[str], partitions: dict[str, str]) -> tuple:
    """What an error tells: class, constraint and text, with the ids tried and partition names (which
    stand for their table) blanked."""
    def clean(text: str | None) -> str:
        text = text or ""
        for value in values:
            text = text.replace(value, "<id>")
        for partition, parent in partitions.items():
            text = text.replace(f'"{partition}"', f'"{parent}"')
        return text
    return (type(error), clean(error.diag.constraint_name), clean(error.diag.message_primary),
            clean(error.diag.message_detail))


def test_no_column_links_to_tenant_as_rows_on_insert_or_update(target: Target) -> None:
    """For every column that holds ids, as B: an update of its own row and an insert of a copy of it that
    put one of A's ids there are refused, exactly as an id that exists nowhere would be."""
    columns = linked_columns(target.catalog)
    assert len(columns) >= 25
    before = owner_snapshot(target.owner_url, target.catalog, "A")
    with psycopg.connect(target.owner_url) as owner:
        partitions = dict(owner.execute("select inhrelid::regclass::text, inhparent::regclass::text from pg_inherits"))
        ids_of_a = {column: owner.execute(sql.SQL("select {}::text from {} where tenant_id = 'A' limit 1").format(
                        sql.Identifier(column.references[1]), sql.Identifier(column.references[0]))).fetchone()[0]
                    for column in columns}
    accepted = []
    with psycopg.connect(target.app_url) as conn:
        tenant(conn, "B")
        for column in columns:
            row = own_row(conn, column.table)
            where = sql.SQL("to_jsonb({}.*) = %s::jsonb").format(sql.Identifier(column.table))
            invented = str(uuid.uuid4())
            outcomes = []
            for value in (ids_of_a[column], invented):
                update = sql.SQL("update {} set {} = %s where ").format(
                    sql.Identifier(column.table), sql.Identifier(column.column)) + where
                shaped = id_value(column.type, value)
                if column.type == "jsonb":
                    shaped = json.dumps(shaped)
                updated = attempt(conn, update, [shaped, json.dumps(row)])
                copy = dict(row, **{column.column: id_value(column.type, value)})
                for name, kind in primary_key(conn, column.table):
                    if kind == "uuid" and name != column.column:
                        copy[name] = str(uuid.uuid4())
                columns_to_insert = insertable_columns(conn, column.table)
                names = sql.SQL(", ").join(sql.Identifier(name) for name in columns_to_insert)
                inserted = attempt(conn, sql.SQL(
                    "insert into {table} ({names}) select {names} from jsonb_populate_record(null::{table}, %s)").format(
                        table=sql.Identifier(column.table), names=names), [json.dumps(copy)])
                outcomes.append((updated, inserted))
            (real_update, real_insert), (fake_update, fake_insert) = outcomes
            for what, real, fake in (("update", real_update, fake_update), ("insert", real_insert, fake_insert)):
                if real is None:
                    accepted.append(f"{column.table}.{column.column}: {what} linking to A's row was accepted")
                    continue
                assert fake is not None, (column, what)
                scrub = [ids_of_a[column], invented]
                assert scrubbed(real, scrub, partitions) == scrubbed(fake, scrub, partitions), (column, what, real, fake)
        conn.rollback()
    assert accepted == []
    assert owner_snapshot(target.owner_url, target.catalog, "A") == before


# ---- functions ----------------------------------------------------------------------------------------

def test_every_function_the_app_can_call_answers_b_for_as_ids_as_for_none(target: Target) -> None:
    """Every function the app may execute (the seed's, the load functions, helpers), called by B with each
    of A's ids in each uuid argument: the answer is the answer for an id that exists nowhere; other
    arguments get a plain value. A's rows are unchanged afterwards."""
    before = owner_snapshot(target.owner_url, target.catalog, "A")
    samples = {"integer": 1, "bigint": 1, "text": "x", "boolean": False, "double precision": 1.0}
    called = []
    with psycopg.connect(target.app_url) as conn:
        tenant(conn, "B")
        for oid, name, arguments, _, _ in target.catalog.functions:
            if not all(kind == "uuid" or kind in samples for kind in arguments):
                continue
            uuid_positions = [index for index, kind in enumerate(arguments) if kind == "uuid"]
            call = sql.SQL("select to_jsonb(result)::text from {}({}) as result").format(
                sql.Identifier(name), sql.SQL(", ").join(sql.Placeholder() for _ in arguments))
            for position in uuid_positions or [None]:
                for value in sorted(target.ids_of_a) if position is not None else [None]:
                    outcomes = []
                    for candidate in (value, str(uuid.uuid4())):
                        args = [candidate if index == position else (str(uuid.uuid4()) if kind == "uuid" else samples[kind])
                                for index, kind in enumerate(arguments)]
                        conn.execute("savepoint attempt")
                        try:
                            answer = sorted(row[0] for row in conn.execute(call, args))
                        except psycopg.Error as error:
                            answer = scrubbed(error, [str(arg) for arg in args if isinstance(arg, str)], {})
                        conn.execute("rollback to savepoint attempt")
                        outcomes.append(answer)
                    assert outcomes[0] == outcomes[1], (name, arguments, position)
            called.append(name)
        conn.rollback()
    assert {"calculate_model_parameters", "get_latest_checkpoint", "begin_embedding_load"} <= set(called)
    assert owner_snapshot(target.owner_url, target.catalog, "A") == before
