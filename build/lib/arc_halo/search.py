"""Nearest embeddings through the per-width HNSW indexes, or exactly (to measure recall)."""

from __future__ import annotations

import numpy as np
import psycopg

from arc_halo.errors import NotFoundError

INDEXED_WIDTHS_MAX_VECTOR = 2000  # wider vectors are indexed as halfvec (see models/raw/tensor_storage/embeddings.sql)


def nearest(conn: psycopg.Connection, query: np.ndarray, k: int = 10, model_id=None, embedding_type: str | None = None,
            ef_search: int = 40, exact: bool = False) -> list[tuple]:
    """(embedding_id, model_id, embedding_type, embedding_index, token_text, cosine distance) of the k nearest
    embeddings of the query's width. `exact` scans instead of using the index, for checking recall."""
    vector = np.asarray(query, dtype=np.float32).ravel()
    width = len(vector)
    kind = "vector" if width <= INDEXED_WIDTHS_MAX_VECTOR else "halfvec"
    text = "[" + ",".join(repr(float(x)) for x in vector) + "]"
    filters, params = ["dimensions = %(width)s"], {"width": width, "query": text, "k": k}
    if model_id is not None:
        filters.append("model_id = %(model_id)s")
        params["model_id"] = model_id
    if embedding_type is not None:
        filters.append("embedding_type = %(embedding_type)s")
        params["embedding_type"] = embedding_type
    distance = f"embedding::{kind}({width}) <=> %(query)s::{kind}({width})"
    sql = (f"select embedding_id, model_id, embedding_type, embedding_index, token_text, {distance} as distance"
           f" from embeddings where {' and '.join(filters)} order by {distance} limit %(k)s")
    with conn.transaction():
        conn.execute(f"set local hnsw.ef_search = {int(ef_search)}")
        if exact:
            conn.execute("set local enable_indexscan = off")  # the exact answer: no approximate index
        return conn.execute(sql, params).fetchall()


def nearest_to_token(conn: psycopg.Connection, model_id, token_index: int, k: int = 10, **options) -> list[tuple]:
    row = conn.execute("select embedding::real[] from embeddings where model_id = %s and embedding_type = 'token'"
                       " and embedding_index = %s", (model_id, token_index)).fetchone()
    if row is None:
        raise NotFoundError(f"model {model_id} has no token embedding {token_index}")
    return nearest(conn, np.array(row[0], dtype=np.float32), k, model_id=model_id, embedding_type="token", **options)
