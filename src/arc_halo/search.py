"""Nearest embeddings: exactly, or through a model partition's HNSW index once it is valid.

Each model's embeddings are a partition of their own, and each partition gets the index its width and
size call for (arc_halo.embeddings.plan_index), built after the import commits. A search reads the
catalog first: a partition with a valid index is searched through it, anything else (a small partition,
an index not built yet or left INVALID by an interrupted build, rows still in embeddings_default) exactly.
The result says which (`result.method`, `result.exact`) and a fallback from an index that should be
there is logged, so no search is silently exact or silently approximate.

Exact is exact by construction, not by planner settings (PostgreSQL 18's `enable_indexscan = off` only
adds a cost, and the HNSW scan may stay): the exact query orders by `(embedding <=> query) + 0`, an
expression no index can return rows in order of, so the plan is a scan and a sort on every version.

Approximate: HNSW returns candidates nearest first; the search asks for more of them than k (`candidates`,
ef_search raised to match, pgvector 0.8's iterative scan so filters and re-ranking never leave fewer than
k) and orders them by the exact distance on the full vectors, which for halfvec- and bit-indexed
partitions re-ranks them. The beam adapts to the query (`NARROW_BEAM`, below): a narrow walk first, and
a wide one only when the narrow walk's own candidates show a crowded neighbourhood, where it misses.
Every setting is changed with SET LOCAL inside the one transaction of its own that
`nearest` opens (its end undoes them), or inside the caller's transaction in a savepoint rolled back
after the rows are fetched: rolling back undoes SET LOCAL, where releasing a savepoint would leave it on
the caller's transaction.
"""

from __future__ import annotations

import heapq
import logging
import uuid
from collections.abc import Iterable
from typing import Any

import numpy as np
import psycopg

from arc_halo import embeddings
from arc_halo.errors import InvalidInputError, NotFoundError, public_call
from arc_halo.tenancy import CURRENT_TENANT
from arc_halo.validation import as_uuid, whole_number

log = logging.getLogger(__name__)

MAX_WIDTH = 16_000  # pgvector's vector type
MAX_K = 10_000
MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search
DEFAULT_MAX_SCAN_TUPLES = 20_000  # pgvector's default; raised for large k so a filtered scan can finish
# Candidates fetched from the index per result wanted, by index kind: a vector index's distances are
# exact, a halfvec's nearly so, a bit index's only a coarse order (then re-ranked on the full vectors).
CANDIDATES_PER_RESULT = {"vector": 1, "halfvec": 4, "bit": 40}
MIN_CANDIDATES = {"vector": 0, "halfvec": 100, "bit": 1000}
COLUMNS = "embedding_id, model_id, embedding_type, embedding_index, token_text"
# The adaptive beam. On real token embeddings most queries get all k right from a narrow beam and a few
# need a wide one: through an m=48 graph at ef_search 40, 70-74% of Gemma 3's token queries and 80-85% of
# SmolLM2's had all ten right. The rest sit in crowded neighbourhoods, and the narrow walk's own
# candidates show it: their k-th exact distance is nearly that of the farthest of them (more than CROWDED
# times it; on Gemma this flags the queries the narrow walk got wrong with an AUC of 0.87-0.92). Only
# those are walked again with the wide beam (default_ef_search), and the two walks' rows merged. Gemma 3,
# 400 token queries, raw SQL: 37-41% walked again, recall@10 0.966-0.980 (the wide beam alone: 0.977-0.983);
# through search.nearest (benchmarks/bench_similarity.py): 34-36% again, recall@10 0.979, p50 9.1-9.9 ms
# (was 21.8 ms at a fixed 300 through an m=32 graph). Graphs sparser than NARROW_MIN_M (small
# partitions, an index an earlier plan built) miss too much at the narrow beam and get the wide one, as
# does a caller's own `ef_search`, and a bit index, whose candidates are too coarse to judge by.
NARROW_BEAM = 40  # ef_search of the first walk, and its candidates: at least NARROW_PER_RESULT * k
NARROW_PER_RESULT = 4
CROWDED = 0.95
NARROW_MIN_M = 48


Row = tuple[Any, ...]


class SearchResult(list[Row]):
    """The rows found, nearest first: (embedding_id, model_id, embedding_type, embedding_index,
    token_text, cosine distance). `method` says how they were found: 'exact' (a scan of every vector),
    'hnsw' (the partition's HNSW index), 'hnsw-halfvec+rerank' or 'hnsw-bit+rerank' (candidates from a
    halfvec or binary-quantized index, re-ranked exactly); 'mixed' when models searched together differ.
    `reason` says why an exact search was exact; `ef_search` is the widest HNSW beam the search walked (the
    wide one when the narrow walk's neighbourhood was crowded; the largest of the models' when merged)."""

    def __init__(self, rows: Iterable[Row], method: str, reason: str = "", ef_search: int | None = None) -> None:
        super().__init__(rows)
        self.method = method
        self.reason = reason
        self.ef_search = ef_search  # the widest beam walked (an index search; None for exact)

    @property
    def exact(self) -> bool:
        return self.method == "exact"


def default_ef_search(row_count: int, k: int) -> int:
    """The wide beam for a partition of `row_count` vectors: of every walk where the beam does not adapt,
    of a crowded query's second walk where it does. Real token embeddings need a wider beam than random
    vectors for recall@10 of 0.95, the more so the larger the vocabulary (benchmarks/bench_similarity.py;
    m=32 graphs: MiniLM's 30k tokens 0.999 at 200; SmolLM2's 49k 0.93 at 100, 0.95 at 200, 0.97 at 400;
    Gemma 3's 262k 0.92 at 100, 0.94-0.96 at 200 from build to build, 0.94-0.97 at 300; m=48: Gemma 0.97-0.98
    at 400)."""
    whole_number("row_count", row_count, 0, 2**63 - 1)
    whole_number("k", k, 1, MAX_K)
    base = 100 if row_count < 20_000 else 200 if row_count < 40_000 else 300 if row_count < 100_000 else 400
    return min(MAX_EF_SEARCH, max(base, 2 * k))


def _query_vector(query: np.ndarray) -> np.ndarray:
    try:
        vector = np.asarray(query, dtype=np.float32).ravel()
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(f"query must be a vector of numbers: {exc}") from None
    if not 1 <= len(vector) <= MAX_WIDTH:
        raise InvalidInputError(f"query has {len(vector)} dimensions; embeddings have 1 to {MAX_WIDTH}")
    if not np.isfinite(vector).all():
        raise InvalidInputError("query contains NaN or infinite values")
    return vector


@public_call
def nearest(conn: psycopg.Connection, query: np.ndarray, k: int = 10, model_id: uuid.UUID | str | None = None,
            embedding_type: str | None = None, ef_search: int | None = None, exact: bool = False) -> SearchResult:
    """The k nearest embeddings (cosine distance) of the query's width, nearest first: k rows whenever k
    exist. Within one model (`model_id`) or across every model of that width the caller can see (each
    model's partition searched on its own, the results merged; rows still in embeddings_default are found
    through their model like any other).
    `exact` scans every vector (for checking recall); otherwise a model's valid index is used if it has
    one, with the adaptive beam (NARROW_BEAM, above) where its graph allows; `ef_search` makes it one walk
    of that beam instead. The connection's settings are as they were afterwards."""
    vector = _query_vector(query)
    k = whole_number("k", k, 1, MAX_K)
    if ef_search is not None:
        ef_search = whole_number("ef_search", ef_search, 1, MAX_EF_SEARCH)
    text = str(vector.tolist())  # '[0.5, -1.25, ...]': each float32 exactly (repr), as vector_in reads it
    # Catalog reads included, all of it in a transaction of its own, whose end (a commit: it wrote nothing)
    # undoes the SET LOCALs; inside the caller's transaction, in a savepoint rolled back at the end. Not
    # a rollback of its own transaction: psycopg forgets its prepared statements at every ROLLBACK, and
    # the status and search statements would be planned again on every call (~3 ms).
    nested = conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
    with conn.transaction(force_rollback=nested):
        if model_id is not None:
            return _nearest_in_model(conn, model_id, text, len(vector), k, embedding_type, ef_search, exact)
        models = [row[0] for row in conn.execute(
            f"select model_id from models where hidden_size = %s and tenant_id = {CURRENT_TENANT} order by model_id",
            (len(vector),))]
        parts = [_nearest_in_model(conn, model, text, len(vector), k, embedding_type, ef_search, exact)
                 for model in models]
    rows = _k_nearest((row for part in parts for row in part), k)
    methods = {part.method for part in parts if part}
    method = methods.pop() if len(methods) == 1 else "exact" if not methods else "mixed"
    beams = [part.ef_search for part in parts if part.ef_search is not None]
    return SearchResult(rows, method, "; ".join(sorted({part.reason for part in parts if part.reason})),
                        max(beams) if beams else None)


def _nearest_in_model(conn: psycopg.Connection, model_id: uuid.UUID | str, text: str, width: int, k: int,
                      embedding_type: str | None, ef_search: int | None, exact: bool) -> SearchResult:
    if exact:
        return SearchResult(_exact(conn, text, width, k, embedding_type, model_id), "exact", "exact search asked for")
    try:
        status = embeddings.index_status(conn, model_id)
    except NotFoundError:
        return SearchResult([], "exact", f"no model {model_id}")
    if status.state != "ready" or status.width != width:
        reason = {"exact": f"{status.rows} vectors: below {embeddings.EXACT_BELOW_ROWS}, searched exactly"
                           if status.partition else "no partition yet (rows not split out by a build)",
                  "missing": "its index is not built yet (arc-halo model index)",
                  "building": "its index is being built",
                  "invalid": "its index build was interrupted, or its index is of an operator class search cannot use"
                             " (arc-halo model index rebuilds it)",
                  "ready": "the query's width is not the model's"}[status.state]
        if status.state not in ("exact", "ready"):
            log.info("exact search of model %s: %s", model_id, reason)
        return SearchResult(_exact(conn, text, width, k, embedding_type, model_id), "exact", reason)
    index = status.index_plan  # the index that exists (a 'ready' one is of a kind search knows)
    kind = str(index.kind)
    filters, params = _filters(model_id, embedding_type)
    params.update(query=text, width=width)
    sql = _approximate_sql(index, width, filters, status.exact_match)
    wide = ef_search or default_ef_search(status.rows, k)
    candidates = max(k, CANDIDATES_PER_RESULT[kind] * k, MIN_CANDIDATES[kind])
    wide = min(MAX_EF_SEARCH, max(wide, candidates))
    narrow = max(NARROW_BEAM, NARROW_PER_RESULT * k)
    # Set once per search: the iterative scan (a filter must never leave fewer than k) and its bound.
    scan = {"hnsw.iterative_scan": "relaxed_order",
            "hnsw.max_scan_tuples": str(max(DEFAULT_MAX_SCAN_TUPLES, 100 * max(candidates, narrow)))}
    adaptive = ef_search is None and kind != "bit" and index.m >= NARROW_MIN_M and narrow < wide
    first: list[Row] = []
    if adaptive:
        first = _walk(conn, sql, params, beam=narrow, candidates=narrow, keep=narrow, scan=scan)
        if not _crowded(first, k):
            return SearchResult(first[:k], index.method, ef_search=narrow)
    rows = _walk(conn, sql, params, beam=wide, candidates=candidates, keep=k, scan={} if adaptive else scan)
    # What the narrow walk found and the wide one missed still counts.
    return SearchResult(_k_nearest(first + rows, k), index.method, ef_search=wide)


def _k_nearest(rows: Iterable[Row], k: int) -> list[Row]:
    """The k nearest of rows found by several walks or models, each row once (by model and embedding id),
    ties broken by embedding id."""
    unique = {(row[1], row[0]): row for row in rows}
    return heapq.nsmallest(k, unique.values(), key=lambda row: (row[5], row[0]))


def _crowded(rows: list[Row], k: int) -> bool:
    """Whether a narrow walk's candidates (exact distances, nearest first) look like a neighbourhood it
    may have missed some of: fewer than k, or the k-th barely nearer than the farthest."""
    if len(rows) < k:
        return True
    kth, farthest = rows[k - 1][5], rows[-1][5]
    return bool(farthest > 0 and kth > CROWDED * farthest)


def _approximate_sql(index: embeddings.IndexPlan, width: int, filters: list[str], exact_match: bool) -> str:
    """Candidates from the partition's index, ordered by their exact distance on the full vectors."""
    kind = str(index.kind)
    indexed = index.expression(width)
    query = (f"binary_quantize(%(query)s::vector({width}))::bit({width})" if kind == "bit"
             else f"%(query)s::{kind}({width})")
    operator = "<~>" if kind == "bit" else "<=>"
    # The inner query repeats the index's expression, so the partition's index serves its ORDER BY; the
    # outer one orders the candidates by the exact distance (`+ 0`: PostgreSQL 17+ would otherwise take the
    # inner order as already sorted).
    where = f"dimensions = %(width)s and {' and '.join(filters)}"
    found = "candidates"
    same = ""
    if exact_match:  # a stored vector equal to the query, which the graph may not reach
        same = (f", same as materialized (select {COLUMNS}, embedding <=> %(query)s::vector as distance from embeddings"
                f" where {where} and {embeddings.SAME_VECTOR} = hashtextextended(%(query)s::vector::text, 0)"
                f" and embedding = %(query)s::vector)")
        found = "(select * from candidates union select * from same) as found"
    return (f"with candidates as materialized ("
            f"select {COLUMNS}, embedding <=> %(query)s::vector as distance from embeddings"
            f" where {where} order by {indexed} {operator} {query} limit %(candidates)s){same}"
            f" select * from {found} order by distance + 0, embedding_id limit %(keep)s")


def _walk(conn: psycopg.Connection, sql: str, params: dict[str, Any], beam: int, candidates: int, keep: int,
          scan: dict[str, str]) -> list[Row]:
    """One walk of the graph with `beam` as ef_search: the `keep` nearest of its `candidates`."""
    return _fetch_with_local_settings(conn, sql, {**params, "candidates": candidates, "keep": keep},
                                      {"hnsw.ef_search": str(beam), **scan})


def _filters(model_id: uuid.UUID | str | None, embedding_type: str | None) -> tuple[list[str], dict[str, Any]]:
    filters, params = [f"tenant_id = {CURRENT_TENANT}"], dict[str, Any]()
    if model_id is not None:
        filters.append("model_id = %(model_id)s")
        params["model_id"] = as_uuid("model id", model_id)
    if embedding_type is not None:
        filters.append("embedding_type = %(embedding_type)s")
        params["embedding_type"] = embedding_type
    return filters, params


def _exact_sql(width: int, filters: list[str]) -> str:
    """The exact search: ordered by `(distance) + 0`, which no index can produce rows in order of, so
    the planner scans and sorts on every PostgreSQL version, whatever indexes exist."""
    return (f"select {COLUMNS}, embedding <=> %(query)s::vector as distance from embeddings"
            f" where dimensions = {int(width)} and {' and '.join(filters)}"
            f" order by (embedding <=> %(query)s::vector) + 0, embedding_id limit %(k)s")


def _exact(conn: psycopg.Connection, text: str, width: int, k: int, embedding_type: str | None,
           model_id: uuid.UUID | str | None) -> list[Row]:
    filters, params = _filters(model_id, embedding_type)
    params.update(query=text, k=k)
    # Turning the caller's forbidden scans and sorts back on keeps the scan-and-sort plan cheap to choose.
    settings = {"enable_seqscan": "on", "enable_sort": "on"}
    return _fetch_with_local_settings(conn, _exact_sql(width, filters), params, settings)


def _fetch_with_local_settings(conn: psycopg.Connection, sql: str, params: dict[str, Any],
                               settings: dict[str, str]) -> list[Row]:
    """Run one read with transaction-local settings. Called only inside `nearest`'s transaction (or
    savepoint), whose end undoes them: a savepoint of its own here would cost three statements per
    search."""
    conn.execute("select " + ", ".join(["set_config(%s, %s, true)"] * len(settings)),
                 [item for pair in settings.items() for item in pair])
    return conn.execute(sql, params).fetchall()


@public_call
def nearest_to_token(conn: psycopg.Connection, model_id: uuid.UUID | str, token_index: int, k: int = 10,
                     **options: Any) -> SearchResult:
    model_id = as_uuid("model id", model_id)
    row = conn.execute("select embedding::real[] from embeddings where model_id = %s and embedding_type = 'token'"
                       f" and tenant_id = {CURRENT_TENANT}"
                       " and embedding_index = %s", (model_id, token_index)).fetchone()
    if row is None:
        raise NotFoundError(f"model {model_id} has no token embedding {token_index}")
    return nearest(conn, np.array(row[0], dtype=np.float32), k, model_id=model_id, embedding_type="token", **options)
