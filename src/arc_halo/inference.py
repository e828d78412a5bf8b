"""Inference from ML code: sessions, KV cache and activation cache with TTL, metrics, attention patterns."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from arc_halo import bulk
from arc_halo.dtypes import dtype_name, numpy_dtype
from arc_halo.errors import InvalidInputError, NotFoundError, first_line, public_call
from arc_halo.rows import one_value
from arc_halo.tenancy import CURRENT_TENANT
from arc_halo.validation import (as_uuid, json_object, metric_name, numeric_array, optional_duration, optional_time,
                                 optional_whole_number, real_number, whole_number)


@public_call
def start_session(conn: psycopg.Connection, model_id: uuid.UUID | str, generation_config: dict[str, Any] | None = None,
                  prompt_tokens: int = 0, at: datetime | None = None) -> uuid.UUID:
    """A running inference session of the model; `at` backdates its start (default: now)."""
    model_id, config_json = as_uuid("model id", model_id), json_object("generation_config", generation_config)
    prompt_tokens = whole_number("prompt_tokens", prompt_tokens, 0, MAX_POSITION)
    at = optional_time("at", at)
    with conn.transaction():
        session_id: uuid.UUID = one_value(conn.execute(
            """insert into inference_sessions (model_id, status, generation_config, prompt_tokens, started_at)
               values (%s, 'running', %s, %s, coalesce(%s, now())) returning inference_session_id""",
            (model_id, config_json, prompt_tokens, at)))
        return session_id


@public_call
def finish_session(conn: psycopg.Connection, session_id: uuid.UUID | str, generated_tokens: int,
                   status: str = "completed", at: datetime | None = None) -> None:
    """End the session (`at`: when it ended, default now)."""
    session_id = as_uuid("session id", session_id)
    at = optional_time("at", at)
    with conn.transaction():
        if conn.execute("update inference_sessions set status = %s, generated_tokens = %s, ended_at = coalesce(%s, now())"
                        f" where inference_session_id = %s and tenant_id = {CURRENT_TENANT}",
                        (status, generated_tokens, at, session_id)).rowcount == 0:
            raise NotFoundError(f"no inference session {session_id}: see `select inference_session_id, model_id "
                                f"from inference_sessions`")


@dataclass(frozen=True)
class KVEntry:
    keys: np.ndarray
    values: np.ndarray
    position_start: int
    position_end: int


def _ttl(ttl: timedelta | None) -> timedelta | None:
    ttl = optional_duration("ttl", ttl)
    if ttl is not None and ttl <= timedelta(0):
        raise InvalidInputError("ttl must be positive (or None for no expiry)")
    return ttl


@public_call
def put_kv(conn: psycopg.Connection, session_id: uuid.UUID | str, layer_id: uuid.UUID | str, keys: np.ndarray,
           values: np.ndarray, position_start: int, head_index: int | None = None,
           ttl: timedelta | None = timedelta(hours=1), at: datetime | None = None) -> None:
    """Store (or replace) the keys and values of one layer (and head, or all heads) over a position range.
    The entry expires `ttl` after it is written (`at`, default now)."""
    session_id, layer_id = as_uuid("session id", session_id), as_uuid("layer id", layer_id)
    keys, values = numeric_array("keys", keys), numeric_array("values", values)
    whole_number("position_start", position_start, 0, MAX_POSITION)
    optional_whole_number("head_index", head_index, 0, MAX_POSITION)
    if keys.shape != values.shape or keys.dtype != values.dtype:
        raise InvalidInputError(f"keys {keys.shape} {keys.dtype} and values {values.shape} {values.dtype} must match")
    position_end = position_start + (keys.shape[-2] if keys.ndim >= 2 else 1)
    keys, values = np.ascontiguousarray(keys), np.ascontiguousarray(values)
    at = optional_time("at", at)
    with conn.transaction():
        conn.execute(
            """insert into kv_cache (inference_session_id, layer_id, head_index, position_start, position_end, dtype,
                                     shape, key_data, value_data, size_bytes, expires_at, created_at, last_accessed_at)
               values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()) + %s, coalesce(%s, now()),
                       coalesce(%s, now()))
               on conflict (inference_session_id, layer_id, coalesce(head_index, -1), position_start, tenant_id) do update set
                   position_end = excluded.position_end, dtype = excluded.dtype, shape = excluded.shape,
                   key_data = excluded.key_data, value_data = excluded.value_data, size_bytes = excluded.size_bytes,
                   expires_at = excluded.expires_at, last_accessed_at = now()""",
            (session_id, layer_id, head_index, position_start, position_end, dtype_name(keys.dtype), list(keys.shape),
             keys.tobytes(), values.tobytes(), keys.nbytes + values.nbytes, at, _ttl(ttl), at, at))


@public_call
def get_kv(conn: psycopg.Connection, session_id: uuid.UUID | str, layer_id: uuid.UUID | str,
           head_index: int | None = None) -> list[KVEntry]:
    """Unexpired entries of one (session, layer[, head]) in position order; counts the hit."""
    session_id, layer_id = as_uuid("session id", session_id), as_uuid("layer id", layer_id)
    optional_whole_number("head_index", head_index, 0, MAX_POSITION)
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


@public_call
def put_activation(conn: psycopg.Connection, session_id: uuid.UUID | str, layer_id: uuid.UUID | str, name: str,
                   activation: np.ndarray, position_start: int, ttl: timedelta | None = timedelta(hours=1),
                   at: datetime | None = None) -> None:
    """Cache one layer's activation over a position range; it expires `ttl` after it is written (`at`,
    default now)."""
    session_id, layer_id = as_uuid("session id", session_id), as_uuid("layer id", layer_id)
    whole_number("position_start", position_start, 0, MAX_POSITION)
    data = np.ascontiguousarray(numeric_array("activation", activation))
    at = optional_time("at", at)
    with conn.transaction():
        conn.execute(
            """insert into activation_cache (inference_session_id, layer_id, activation_name, position_start, position_end,
                                             dtype, shape, activation_data, size_bytes, expires_at, created_at)
               values (%s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()) + %s, coalesce(%s, now()))""",
            (session_id, layer_id, name, position_start, position_start + (data.shape[0] if data.ndim else 1),
             dtype_name(data.dtype), list(data.shape), data.tobytes(), data.nbytes, at, _ttl(ttl), at))


@public_call
def log_metrics(conn: psycopg.Connection, session_id: uuid.UUID | str, values: dict[str, float],
                at: datetime | None = None) -> None:
    """Metric values of the session (`at`: when measured, default now)."""
    session = as_uuid("session id", session_id)
    at = optional_time("at", at)
    if not isinstance(values, dict):
        raise InvalidInputError(f"values must be a dict of metric name to number, got {type(values).__name__}")
    values = {metric_name(name): real_number(f"metric {name!r}", value) for name, value in values.items()}
    columns: tuple[str, ...] = ("inference_session_id", "metric_name", "value")
    types: tuple[str, ...] = ("uuid", "text", "float8")
    if at is not None:  # else recorded_at's default, the transaction's time
        columns, types = (*columns, "recorded_at"), (*types, "timestamptz")
    with bulk.copy_into(conn, "inference_metrics", columns, types) as copy:
        for name, value in values.items():
            copy.write_row((session, name, value) if at is None else (session, name, value, at))


# Every stored attention pattern is a distribution over its keys in each query row, to these bounds, here
# and in the database (attention_patterns_weights_*_check, the same numbers): the data tests of
# attention_head_stats (max_row_sum_error < 0.01, normalized entropy within [0, 1.000001]) then hold for
# every tenant's rows, so one tenant's data cannot fail the build for all.
ROW_SUM_TOLERANCE = 1e-3  # |row sum - 1|: float32 softmax rows are off by ~1e-7
ENTROPY_SLACK = 5e-7  # normalized row entropy may exceed 1 by rounding only (a true distribution: <= 1)
MAX_POSITION = 2**31 - 1  # integer columns


def row_entropies(weights: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each query row of a query x key attention matrix; 0 log 0 counts as 0."""
    matrix = numeric_array("weights", weights).astype(np.float64)
    entropies: np.ndarray = -(matrix * np.log(np.where(matrix > 0, matrix, 1.0))).sum(axis=1)
    return entropies


def attention_summary(weights: np.ndarray) -> tuple[float, float]:
    """(mean row entropy in nats, max weight) of a query x key attention matrix."""
    weights = numeric_array("weights", weights)
    return float(row_entropies(weights).mean()), float(np.max(weights))


def attention_weights(weights: object) -> np.ndarray:
    """The weights as stored (float32, queries x keys) once they are a distribution in every query row;
    else InvalidInputError naming the first row that is not and what is wrong with it."""
    matrix = np.asarray(weights)
    if matrix.dtype.kind not in "iuf":
        raise InvalidInputError(f"attention weights must be real numbers, got dtype {matrix.dtype}")
    if matrix.ndim != 2 or 0 in matrix.shape:
        raise InvalidInputError(f"attention weights must be 2-d (queries x keys) and not empty, got shape {matrix.shape}")
    stored = matrix.astype(np.float32)
    bad = ~(np.isfinite(stored) & (stored >= 0) & (stored <= 1))
    if bad.any():
        query, key = np.argwhere(bad)[0]
        raise InvalidInputError(f"attention weight [{query}, {key}] is {stored[query, key]}: every weight must be a "
                                f"probability between 0 and 1 (softmax output)")
    values = stored.astype(np.float64)  # what the database and attention_head_stats compute from
    sum_error = np.abs(values.sum(axis=1) - 1.0)
    if sum_error.max() > ROW_SUM_TOLERANCE:
        query = int(sum_error.argmax())
        raise InvalidInputError(f"attention weights of query row {query} sum to {values[query].sum():.6g}, not 1 "
                                f"(within {ROW_SUM_TOLERANCE}): store softmax outputs, normalized over the keys")
    normalized = row_entropies(values) / np.log(max(values.shape[1], 2))
    if normalized.max() > 1 + ENTROPY_SLACK:
        query = int(normalized.argmax())
        raise InvalidInputError(f"attention weights of query row {query} have entropy {normalized[query]:.9f} x "
                                f"log(keys), above the maximum 1 (a row summing to slightly more than 1): "
                                f"normalize it in float32 or float64")
    return stored


@public_call
def record_attention(conn: psycopg.Connection, session_id: uuid.UUID | str, layer_id: uuid.UUID | str, head_index: int,
                     weights: np.ndarray, query_start: int = 0, key_start: int = 0) -> None:
    """One head's attention weights (queries x keys), with the summaries the views use. Weights that are
    not a distribution in every query row (see attention_weights) are refused before anything is sent."""
    session_id, layer_id = as_uuid("session id", session_id), as_uuid("layer id", layer_id)
    stored = attention_weights(weights)
    whole_number("head_index", head_index, 0, MAX_POSITION)
    whole_number("query_start", query_start, 0, MAX_POSITION - stored.shape[0])
    whole_number("key_start", key_start, 0, MAX_POSITION - stored.shape[1])
    entropy, max_weight = attention_summary(stored)
    try:
        with conn.transaction():
            conn.execute(
                """insert into attention_patterns (inference_session_id, layer_id, head_index, query_start, query_end,
                                                   key_start, key_end, weights, mean_entropy, max_weight)
                   values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                (session_id, layer_id, head_index, query_start, query_start + stored.shape[0], key_start,
                 key_start + stored.shape[1], stored.ravel().tolist(), entropy, max_weight))
    except psycopg.errors.CheckViolation as exc:  # a bound met in the database's arithmetic, not in numpy's
        raise InvalidInputError(f"attention weights refused by the database: {first_line(exc)}") from None
