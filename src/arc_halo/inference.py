"""Inference from ML code: sessions, KV cache and activation cache with TTL, metrics, attention patterns."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import psycopg

from arc_halo import bulk
from arc_halo.dtypes import dtype_name, numpy_dtype
from arc_halo.errors import InvalidInputError
from arc_halo.tensors import CURRENT_TENANT


def start_session(conn: psycopg.Connection, model_id, generation_config: dict | None = None,
                  prompt_tokens: int = 0) -> uuid.UUID:
    with conn.transaction():
        return conn.execute(
            """insert into inference_sessions (model_id, status, generation_config, prompt_tokens)
               values (%s, 'running', %s, %s) returning inference_session_id""",
            (model_id, json.dumps(generation_config or {}), prompt_tokens)).fetchone()[0]


def finish_session(conn: psycopg.Connection, session_id, generated_tokens: int, status: str = "completed") -> None:
    with conn.transaction():
        conn.execute("update inference_sessions set status = %s, generated_tokens = %s, ended_at = now()"
                     f" where inference_session_id = %s and tenant_id = {CURRENT_TENANT}", (status, generated_tokens, session_id))


@dataclass(frozen=True)
class KVEntry:
    keys: np.ndarray
    values: np.ndarray
    position_start: int
    position_end: int


def _ttl(ttl: timedelta | None) -> timedelta | None:
    if ttl is not None and ttl <= timedelta(0):
        raise InvalidInputError("ttl must be positive (or None for no expiry)")
    return ttl


def put_kv(conn: psycopg.Connection, session_id, layer_id, keys: np.ndarray, values: np.ndarray,
           position_start: int, head_index: int | None = None, ttl: timedelta | None = timedelta(hours=1)) -> None:
    """Store (or replace) the keys and values of one layer (and head, or all heads) over a position range."""
    if keys.shape != values.shape or keys.dtype != values.dtype:
        raise InvalidInputError(f"keys {keys.shape} {keys.dtype} and values {values.shape} {values.dtype} must match")
    position_end = position_start + (keys.shape[-2] if keys.ndim >= 2 else 1)
    keys, values = np.ascontiguousarray(keys), np.ascontiguousarray(values)
    with conn.transaction():
        conn.execute(
            """insert into kv_cache (inference_session_id, layer_id, head_index, position_start, position_end, dtype,
                                     shape, key_data, value_data, size_bytes, expires_at)
               values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now() + %s)
               on conflict (inference_session_id, layer_id, coalesce(head_index, -1), position_start, tenant_id) do update set
                   position_end = excluded.position_end, dtype = excluded.dtype, shape = excluded.shape,
                   key_data = excluded.key_data, value_data = excluded.value_data, size_bytes = excluded.size_bytes,
                   expires_at = excluded.expires_at, last_accessed_at = now()""",
            (session_id, layer_id, head_index, position_start, position_end, dtype_name(keys.dtype), list(keys.shape),
             keys.tobytes(), values.tobytes(), keys.nbytes + values.nbytes, _ttl(ttl)))


def get_kv(conn: psycopg.Connection, session_id, layer_id, head_index: int | None = None) -> list[KVEntry]:
    """Unexpired entries of one (session, layer[, head]) in position order; counts the hit."""
    # Binary results: bytea arrives as raw bytes, not as hex text twice its size to decode.
    with conn.transaction(), conn.cursor(binary=True) as cursor:
        rows = cursor.execute(
            f"""update kv_cache set hit_count = hit_count + 1, last_accessed_at = now()
               where tenant_id = {CURRENT_TENANT} and inference_session_id = %s and layer_id = %s and coalesce(head_index, -1) = coalesce(%s, -1)
                 and (expires_at is null or expires_at > now())
               returning position_start, position_end, dtype, shape, key_data, value_data""",
            (session_id, layer_id, head_index)).fetchall()
    entries = []
    for start, end, dtype, shape, key_data, value_data in sorted(rows):
        kind = numpy_dtype(dtype)
        entries.append(KVEntry(np.frombuffer(key_data, kind).reshape(shape), np.frombuffer(value_data, kind).reshape(shape),
                               start, end))
    return entries


def put_activation(conn: psycopg.Connection, session_id, layer_id, name: str, activation: np.ndarray,
                   position_start: int, ttl: timedelta | None = timedelta(hours=1)) -> None:
    data = np.ascontiguousarray(activation)
    with conn.transaction():
        conn.execute(
            """insert into activation_cache (inference_session_id, layer_id, activation_name, position_start, position_end,
                                             dtype, shape, activation_data, size_bytes, expires_at)
               values (%s, %s, %s, %s, %s, %s, %s, %s, %s, now() + %s)""",
            (session_id, layer_id, name, position_start, position_start + (data.shape[0] if data.ndim else 1),
             dtype_name(data.dtype), list(data.shape), data.tobytes(), data.nbytes, _ttl(ttl)))


def log_metrics(conn: psycopg.Connection, session_id, values: dict[str, float]) -> None:
    with bulk.copy_into(conn, "inference_metrics", ("inference_session_id", "metric_name", "value"),
                        ("uuid", "text", "float8")) as copy:
        session = uuid.UUID(str(session_id))
        for name, value in values.items():
            copy.write_row((session, name, float(value)))


def row_entropies(weights: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each query row of a query x key attention matrix; 0 log 0 counts as 0."""
    matrix = np.asarray(weights, dtype=np.float64)
    return -(matrix * np.log(np.where(matrix > 0, matrix, 1.0))).sum(axis=1)


def attention_summary(weights: np.ndarray) -> tuple[float, float]:
    """(mean row entropy in nats, max weight) of a query x key attention matrix."""
    return float(row_entropies(weights).mean()), float(np.max(weights))


def record_attention(conn: psycopg.Connection, session_id, layer_id, head_index: int, weights: np.ndarray,
                     query_start: int = 0, key_start: int = 0) -> None:
    """One head's attention weights (queries x keys), with the summaries the views use."""
    if weights.ndim != 2:
        raise InvalidInputError(f"attention weights must be 2-d (queries x keys), got shape {weights.shape}")
    entropy, max_weight = attention_summary(weights)
    with conn.transaction():
        conn.execute(
            """insert into attention_patterns (inference_session_id, layer_id, head_index, query_start, query_end,
                                               key_start, key_end, weights, mean_entropy, max_weight)
               values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (session_id, layer_id, head_index, query_start, query_start + weights.shape[0], key_start,
             key_start + weights.shape[1], weights.astype(np.float32).ravel().tolist(), entropy, max_weight))
