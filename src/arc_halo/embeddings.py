"""Bulk loading a model's embeddings into its own partition of `embeddings`.

The rows go by binary COPY into a table no reader can see, which is attached as the model's partition
in the caller's transaction (begin_embedding_load / finish_embedding_load in
macros/schema_helpers/embedding_partitions.sql). Nothing is visible until the transaction commits, and
a killed load leaves nothing behind. The table has an opaque name and takes rows only from the login that
began the load, of its own tenant and model (a policy); the attach refuses any other row. The partition's
approximate index is built after the commit, concurrently (`build_index`, below).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from arc_halo import bulk
from arc_halo.errors import InvalidInputError, NotFoundError, public_call
from arc_halo.rows import one_value
from arc_halo.tenancy import CURRENT_TENANT
from arc_halo.validation import as_uuid, numeric_array, text, whole_number

# Columns and binary wire types of a bulk load.
COLUMNS = ("model_id", "embedding_type", "embedding_index", "token_text", "dimensions", "embedding")
TYPES = ("uuid", "text", "int4", "text", "int4", "vector")


@public_call
def bulk_load(conn: psycopg.Connection, model_id: uuid.UUID | str,
              tables: Iterable[tuple[str, np.ndarray, list[str | None] | None]]) -> int:
    """Load (embedding_type, rows x width array, token texts or None) tables of a model that has no
    embeddings yet; returns the number of rows loaded."""
    model_id = as_uuid("model id", model_id)
    tables = list(tables) if isinstance(tables, Iterable) and not isinstance(tables, (str, bytes)) else None
    if tables is None or not all(isinstance(table, tuple) and len(table) == 3 for table in tables):
        raise InvalidInputError("tables must be a list of (embedding_type, rows x width array, token texts or None)")
    register_vector(conn)  # the binary COPY below needs the vector type's adapter, whoever opened conn
    with conn.transaction():
        partition = one_value(conn.execute("select begin_embedding_load(%s)", (model_id,)))
        with bulk.copy_into(conn, partition, COLUMNS, TYPES) as copy:
            for embedding_type, table, texts in tables:
                values = numeric_array(f"{embedding_type} embeddings", table).astype(np.float32, copy=False)
                if values.ndim != 2:
                    raise InvalidInputError(f"{embedding_type} embeddings must be rows x width, got shape {values.shape}")
                width = values.shape[1]
                for index, row in enumerate(values):
                    text = texts[index] if texts is not None and index < len(texts) else None
                    copy.write_row((model_id, embedding_type, index, text, width, row))
        return int(one_value(conn.execute("select finish_embedding_load(%s)", (model_id,))))


# ---------------------------------------------------------------------------------------------------------
# The approximate index of a model's partition, built after the import commits (issue 19).
#
# A model's embeddings are searchable exactly from the moment its import commits. Its HNSW index is built
# afterwards, on its partition alone, with CREATE INDEX CONCURRENTLY (readers and writers go on), by
# `build_index` (the import command calls it after the commit; `arc-halo model index` does it later).
# Until the index is valid (pg_index.indisvalid) search reads the partition exactly and says so; an
# interrupted build leaves an INVALID index, which the planner never uses and the next build drops and
# builds again. What gets built is chosen from the partition's width and size, not from a fixed list:
#   - fewer than EXACT_BELOW_ROWS rows: no index; an exact scan of a partition that small is fast;
#   - up to 2,000 dimensions and below HALFVEC_FROM_ROWS rows: HNSW over embedding::vector(n) (distances
#     exact, no re-rank needed);
#   - up to 4,000, or from HALFVEC_FROM_ROWS rows: HNSW over embedding::halfvec(n), candidates re-ranked on
#     the full vectors;
#   - wider (to pgvector's 16,000): HNSW over binary_quantize(embedding)::bit(n), re-ranked likewise.
# Each partition's index is its own: a partitioned (ON ONLY) parent index has one definition for every
# partition, and partitions differ in width, so there is no parent index to attach to.
# ---------------------------------------------------------------------------------------------------------

EXACT_BELOW_ROWS = 5_000  # below this, no index: an exact scan of the partition takes a few ms
VECTOR_MAX_WIDTH = 2_000  # pgvector's HNSW limit for vector
HALFVEC_MAX_WIDTH = 4_000  # ... and for halfvec; bit goes to 64,000, past vector's own 16,000
# From this many rows a halfvec graph even where vector fits: half the index's memory, and a walk that
# touches half the bytes (Gemma 3's 262k x 640 tokens, same graph settings, ef_search 300: recall@10 0.963
# vs 0.962, p50 22.6 vs 26.3 ms through search.nearest; benchmarks/bench_similarity.py).
HALFVEC_FROM_ROWS = 100_000
INDEX_SUFFIX = "_ann"
# The operator class of each index kind, and (read from the catalog) the kind of each operator class.
OPERATOR_CLASS = {"vector": "vector_cosine_ops", "halfvec": "halfvec_cosine_ops", "bit": "bit_hamming_ops"}
KIND_OF_OPERATOR_CLASS = {operator_class: kind for kind, operator_class in OPERATOR_CLASS.items()}
# HNSW can leave a few vectors unreachable (on SmolLM2's tokens, 24 of 200 query tokens did not find
# themselves at ef_search 100). Beside the graph, a btree over a hash of each vector finds a stored vector
# equal to the query in one lookup, so a token's own vector is always among its nearest.
SAME_VECTOR = "hashtextextended(embedding::text, 0)"
SAME_SUFFIX = "_same"


@dataclass(frozen=True)
class IndexPlan:
    """How a partition of `rows` vectors of `width` dimensions is searched approximately."""

    kind: str | None  # 'vector', 'halfvec', 'bit', or None: exact search, no index
    m: int = 16  # pgvector's defaults, also what an index without options was built with
    ef_construction: int = 64

    @property
    def method(self) -> str:
        return {None: "exact", "vector": "hnsw", "halfvec": "hnsw-halfvec+rerank", "bit": "hnsw-bit+rerank"}[self.kind]

    def expression(self, width: int) -> str:
        """The indexed expression; a query must repeat it to be served by the index."""
        if self.kind == "bit":
            return f"binary_quantize(embedding)::bit({width})"
        return f"embedding::{self.kind}({width})"

    def operator_class(self) -> str:
        return OPERATOR_CLASS[str(self.kind)]


def plan_index(row_count: int, width: int) -> IndexPlan:
    """The index for a partition, from its data: kind by width, graph size by row count. Token embeddings
    of real models are far harder for HNSW than random vectors (many a token's ten nearest are barely
    nearer than the rest of the vocabulary: on Gemma 3's tokens the median 51st-nearest is only 1.08 times
    as far as the 10th): a denser graph is what lifts recall at a given ef_search, and what lets search's
    narrow first walk (search.NARROW_BEAM) answer most queries. At ef_search 40, recall@10 with m=32,
    ef_construction=128 / m=48, ef_construction=200: Gemma 3's 262k x 640 tokens 0.80-0.83 / 0.88-0.90,
    SmolLM2's 49k x 576 0.86-0.88 / 0.90-0.93; the denser graph takes about twice as long to build (Gemma
    14 min, SmolLM2 100 s on 2 cores), after the import, in the background."""
    whole_number("row_count", row_count, 0, 2**63 - 1)
    whole_number("width", width, 1, 16_000)
    if row_count < EXACT_BELOW_ROWS:
        return IndexPlan(None)
    if width <= VECTOR_MAX_WIDTH and row_count < HALFVEC_FROM_ROWS:
        kind = "vector"
    else:
        kind = "halfvec" if width <= HALFVEC_MAX_WIDTH else "bit"
    if row_count < 20_000:
        return IndexPlan(kind, m=16, ef_construction=100)
    return IndexPlan(kind, m=48, ef_construction=200)


@dataclass(frozen=True)
class IndexStatus:
    """Where a model's partition and its approximate index stand."""

    model_id: uuid.UUID
    partition: str | None  # None: no partition (no embeddings, or rows still in embeddings_default)
    rows: int
    width: int | None
    plan: IndexPlan
    index: str | None  # the partition's HNSW index, valid or not
    valid: bool
    building: bool  # a CREATE INDEX is running on the partition
    exact_match: bool = False  # a valid index finds a stored vector equal to the query (see SAME_VECTOR)
    index_kind: str | None = None  # what the existing index is over ('vector', 'halfvec', 'bit'); None: not ours
    index_m: int = IndexPlan.m  # the existing graph's settings (pgvector's defaults where its options do not say)
    index_ef_construction: int = IndexPlan.ef_construction

    @property
    def state(self) -> str:
        """'exact' (no index needed), 'ready', 'building', 'invalid' (an interrupted build, or an index of
        an operator class search cannot use), 'missing'."""
        if self.partition is None or self.plan.kind is None:
            return "exact"
        if self.index is not None and self.valid and self.index_kind is not None:
            return "ready"
        if self.building:
            return "building"
        return "invalid" if self.index is not None else "missing"

    @property
    def index_plan(self) -> IndexPlan:
        """The index that exists, as search reads it: its kind (expression and method follow from it) and
        its graph's settings, which may be an earlier plan's."""
        return IndexPlan(self.index_kind, self.index_m, self.index_ef_construction)


# A model's partition is the table its rows are in (tableoid, read through the parent: its privileges,
# its policies; pruned to that one partition), unless that is the default partition; never a formatted
# name. The index's kind is read from its operator class, so a search uses the index that exists, even
# one built by an older plan. A build in progress is read from the function under the view
# pg_stat_progress_create_index: the view's joins tripled the planning of this statement, which every
# search runs (2.4 -> 0.5 ms planning, 0.6 -> 0.2 ms execution).
_STATUS_SQL = """
    select part.oid::regclass::text, greatest(part.reltuples, 0)::bigint, m.hidden_size,
           ann.relname, coalesce(idx.indisvalid and idx.indisready, false), opclass.opcname, ann.reloptions,
           exists (select from pg_stat_get_progress_info('CREATE INDEX') as progress where progress.relid = part.oid),
           exists (select from pg_index as same where same.indrelid = part.oid and same.indisvalid
                   and pg_get_expr(same.indexprs, same.indrelid) like 'hashtextextended(%%')
    from models as m
    left join pg_class as part
      on part.oid = (select row.tableoid from embeddings as row where row.model_id = %(model)s limit 1)
     and part.oid <> (select partdefid from pg_partitioned_table where partrelid = 'embeddings'::regclass)
    left join lateral (select index.* from pg_index as index join pg_class as c on c.oid = index.indexrelid
                       join pg_am as am on am.oid = c.relam
                       where index.indrelid = part.oid and am.amname = 'hnsw' order by c.relname limit 1) as idx on true
    left join pg_class as ann on ann.oid = idx.indexrelid
    left join pg_opclass as opclass on opclass.oid = idx.indclass[0]
    where m.model_id = %(model)s
"""


@public_call
def partition_of(conn: psycopg.Connection, model_id: uuid.UUID | str) -> str | None:
    """The (schema-qualified where needed) name of the model's partition of `embeddings`, or None."""
    model_id = as_uuid("model id", model_id)
    row = conn.execute(
        """select part.oid::regclass::text from pg_inherits as inh join pg_class as part on part.oid = inh.inhrelid
           where inh.inhparent = 'embeddings'::regclass
             and pg_get_expr(part.relpartbound, part.oid) = format('FOR VALUES IN (%%L)', %s::uuid)""",
        (model_id,)).fetchone()
    return str(row[0]) if row else None


@public_call
def index_status(conn: psycopg.Connection, model_id: uuid.UUID | str) -> IndexStatus:
    model_id = as_uuid("model id", model_id)
    row = conn.execute(_STATUS_SQL, {"model": model_id}).fetchone()
    if row is None:
        raise NotFoundError(f"no model {model_id}")
    partition, row_count, width, index, valid, operator_class, options, building, exact_match = row
    if partition is None:
        return IndexStatus(uuid.UUID(str(model_id)), None, 0, width, IndexPlan(None), None, False, False)
    if row_count == 0:  # never analyzed (reltuples -1): count it, through the parent (its privileges, its policies)
        row_count = one_value(conn.execute("select count(*) from embeddings where model_id = %s", (model_id,)))
    graph = dict(option.split("=", 1) for option in options or [])  # reloptions: ['m=48', 'ef_construction=200']
    return IndexStatus(uuid.UUID(str(model_id)), partition, row_count, width, plan_index(row_count, width), index,
                       bool(valid), bool(building), bool(exact_match), KIND_OF_OPERATOR_CLASS.get(operator_class),
                       int(graph.get("m", IndexPlan.m)), int(graph.get("ef_construction", IndexPlan.ef_construction)))


def _index_name(partition: str) -> str:
    bare = partition.rsplit(".", 1)[-1].strip('"')
    return bare[:63 - len(INDEX_SUFFIX)] + INDEX_SUFFIX


@public_call
def build_index(conn: psycopg.Connection, model_id: uuid.UUID | str, rebuild: bool = False) -> IndexStatus:
    """Build the model's approximate index if it needs one and has none that is valid (or always, with
    `rebuild`), on its partition, concurrently: readers and writers go on. Runs on a connection of its own
    in autocommit (CREATE INDEX CONCURRENTLY cannot run in a transaction), so `conn`'s transaction, if
    any, is not touched; the import's rows must be committed first. Needs the table's owner (as building
    the schema does). One build per model at a time: a second returns at once, its state 'building'."""
    from arc_halo.db import check_transport, conninfo_of

    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        # CREATE INDEX CONCURRENTLY waits for every transaction older than it, conn's too: it would never end.
        raise InvalidInputError("build_index needs the connection outside a transaction (commit or roll back first):"
                                " a concurrent index build waits for every open transaction")
    conninfo = conninfo_of(conn)
    check_transport(conninfo, source="embeddings.build_index")
    with psycopg.connect(conninfo, autocommit=True) as builder:
        status = index_status(builder, model_id)
        if status.partition is None:
            return status
        if not one_value(builder.execute("select pg_try_advisory_lock(hashtext('arc_halo.embedding_index'), hashtext(%s))",
                                      (str(model_id),))):
            return status  # another session is building it: its state says 'building'
        try:
            status = index_status(builder, model_id)
            partition, width = status.partition, status.width
            assert partition is not None and width is not None, "a partition's status has its name and width"
            if status.index is not None and (rebuild or not status.valid or status.index_kind is None):
                # An INVALID index (an interrupted build) is never used by the planner, one of another
                # operator class never by search; drop it and build again.
                builder.execute(sql.SQL("drop index concurrently if exists {}").format(
                    _qualified(builder, partition, status.index)))
                if status.plan.kind is None:  # the partition has become too small to need one
                    return index_status(builder, model_id)
            elif status.plan.kind is None:
                return status
            elif status.index is not None:
                _build_same_vector_index(builder, partition)
                return index_status(builder, model_id)
            plan = status.plan
            vector_bytes = status.rows * (width * (2 if plan.kind == "halfvec" else 4 if plan.kind == "vector" else 1) + 64)
            graph_bytes = status.rows * plan.m * 2 * 8
            memory_mb = max(64, min(4096, (vector_bytes + graph_bytes) * 2 // 1048576 + 64))
            builder.execute(sql.SQL("set maintenance_work_mem = {}").format(sql.Literal(f"{memory_mb}MB")))
            builder.execute("set max_parallel_maintenance_workers = 2")
            builder.execute(sql.SQL(
                "create index concurrently {name} on {partition} using hnsw (({expression}) {opclass})"
                " with (m = {m}, ef_construction = {ef})").format(
                name=sql.Identifier(_index_name(partition)), partition=sql.SQL(partition),
                expression=sql.SQL(plan.expression(width)), opclass=sql.SQL(plan.operator_class()),
                m=sql.Literal(plan.m), ef=sql.Literal(plan.ef_construction)))
            _build_same_vector_index(builder, partition)
            return index_status(builder, model_id)
        finally:
            builder.execute("select pg_advisory_unlock(hashtext('arc_halo.embedding_index'), hashtext(%s))",
                            (str(model_id),))


def _build_same_vector_index(builder: psycopg.Connection, partition: str) -> None:
    name = _index_name(partition)[:-len(INDEX_SUFFIX)] + SAME_SUFFIX
    invalid = builder.execute("select not indisvalid from pg_index where indexrelid = to_regclass(%s)",
                              (name,)).fetchone()
    if invalid and invalid[0]:
        builder.execute(sql.SQL("drop index concurrently if exists {}").format(_qualified(builder, partition, name)))
    builder.execute(sql.SQL("create index concurrently if not exists {name} on {partition} (({expression}))").format(
        name=sql.Identifier(name), partition=sql.SQL(partition), expression=sql.SQL(SAME_VECTOR)))


def _qualified(conn: psycopg.Connection, partition: str, index: str) -> sql.Composable:
    schema = one_value(conn.execute("select relnamespace::regnamespace::text from pg_class where oid = %s::regclass",
                                 (partition,)))
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(index))


@public_call
def model_ids(conn: psycopg.Connection, model: str) -> list[uuid.UUID]:
    """The models `model` names: an id, or a name (every version of it), of the transaction's tenant."""
    model = str(model) if isinstance(model, uuid.UUID) else text("model", model)
    rows = conn.execute(f"select model_id from models where (model_id::text = %s or model_name = %s)"
                        f" and tenant_id = {CURRENT_TENANT} order by version", (model, model)).fetchall()
    if not rows:
        raise NotFoundError(f"no model {model!r}; `arc-halo model list` shows what is registered")
    return [row[0] for row in rows]
