"""Nearest embeddings through the per-width HNSW indexes, or exactly (to measure recall).

An HNSW scan returns at most `hnsw.ef_search` candidates, and a filter (a model, a kind, row-level
security) drops some of them after the index: so the search raises ef_search to k and lets pgvector
0.8's iterative scan fetch more candidates until k rows pass the filter. Every setting is changed
inside a savepoint (or a transaction of its own) that is rolled back after the rows are fetched:
rolling back undoes SET LOCAL, where releasing a savepoint would leave it on the caller's transaction.
"""

from __future__ import annotations

import numpy as np
import psycopg

from arc_halo.errors import InvalidInputError, NotFoundError, public_call
from arc_halo.tensors import CURRENT_TENANT
from arc_halo.validation import as_uuid, whole_number

INDEXED_WIDTHS_MAX_VECTOR = 2000  # wider vectors are indexed as halfvec (see models/raw/tensor_storage/embeddings.sql)
MAX_WIDTH = 16_000  # pgvector's vector type
MAX_K = 10_000
MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search
DEFAULT_MAX_SCAN_TUPLES = 20_000  # pgvector's default; raised for large k so a filtered scan can finish


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
def nearest(conn: psycopg.Connection, query: np.ndarray, k: int = 10, model_id=None, embedding_type: str | None = None,
            ef_search: int = 40, exact: bool = False) -> list[tuple]:
    """(embedding_id, model_id, embedding_type, embedding_index, token_text, cosine distance) of the k nearest
    embeddings of the query's width, nearest first: k rows whenever k exist. `exact` scans instead of using
    the index, for checking recall. The connection's settings are as they were afterwards."""
    vector = _query_vector(query)
    k = whole_number("k", k, 1, MAX_K)
    ef_search = whole_number("ef_search", ef_search, 1, MAX_EF_SEARCH)
    width = len(vector)
    kind = "vector" if width <= INDEXED_WIDTHS_MAX_VECTOR else "halfvec"
    text = "[" + ",".join(repr(float(x)) for x in vector) + "]"
    filters, params = ["dimensions = %(width)s", f"tenant_id = {CURRENT_TENANT}"], {"width": width, "query": text, "k": k}
    if model_id is not None:
        filters.append("model_id = %(model_id)s")
        params["model_id"] = as_uuid("model id", model_id)
    if embedding_type is not None:
        filters.append("embedding_type = %(embedding_type)s")
        params["embedding_type"] = embedding_type
    distance = f"embedding::{kind}({width}) <=> %(query)s::{kind}({width})"
    # relaxed_order may return candidates slightly out of order: the outer query sorts the k found. The
    # `+ 0` keeps PostgreSQL 17+ from taking the inner ORDER BY as already sorted (pgvector's README).
    sql = (f"with candidates as materialized ("
           f"select embedding_id, model_id, embedding_type, embedding_index, token_text, {distance} as distance"
           f" from embeddings where {' and '.join(filters)} order by distance limit %(k)s)"
           f" select * from candidates order by distance + 0, embedding_id")
    if exact:
        # The exact answer: no approximate index. Scans and sorts are switched on too, since a caller that
        # disabled them would otherwise leave the HNSW scan as the planner's only (disabled) choice.
        settings = {"enable_indexscan": "off", "enable_seqscan": "on", "enable_sort": "on"}
    else:
        settings = {"hnsw.ef_search": str(max(ef_search, min(k, MAX_EF_SEARCH))),
                    "hnsw.iterative_scan": "relaxed_order",
                    "hnsw.max_scan_tuples": str(max(DEFAULT_MAX_SCAN_TUPLES, 100 * k))}
    return _fetch_with_local_settings(conn, sql, params, settings)


def _fetch_with_local_settings(conn: psycopg.Connection, sql: str, params: dict, settings: dict[str, str]) -> list[tuple]:
    """Run one read with transaction-local settings, then roll back its savepoint (or its own transaction),
    which undoes the settings; the caller's transaction, if any, goes on unchanged."""
    with conn.transaction(force_rollback=True):
        for name, value in settings.items():
            conn.execute("select set_config(%s, %s, true)", (name, value))
        return conn.execute(sql, params).fetchall()


@public_call
def nearest_to_token(conn: psycopg.Connection, model_id, token_index: int, k: int = 10, **options) -> list[tuple]:
    model_id = as_uuid("model id", model_id)
    row = conn.execute("select embedding::real[] from embeddings where model_id = %s and embedding_type = 'token'"
                       f" and tenant_id = {CURRENT_TENANT}"
                       " and embedding_index = %s", (model_id, token_index)).fetchone()
    if row is None:
        raise NotFoundError(f"model {model_id} has no token embedding {token_index}")
    return nearest(conn, np.array(row[0], dtype=np.float32), k, model_id=model_id, embedding_type="token", **options)
