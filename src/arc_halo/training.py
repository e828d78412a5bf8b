"""Training runs from ML code: sessions, progress, buffered metric logging, checkpoints that restore exactly.

Metrics go through MetricLogger: values are buffered in memory and written with one binary COPY per
flush (through a staging table when row-level security applies, see bulk.py); the
training_metrics_after_insert trigger keeps training_metrics_latest current for every flush.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import psycopg

from arc_halo import bulk, tensors
from arc_halo.errors import InvalidInputError, NotFoundError

METRIC_COLUMNS = ("training_session_id", "metric_name", "step", "epoch", "value", "recorded_at")
# The session id is sent as its 16 raw bytes with psycopg's C bytea dumper: binary COPY carries no types,
# the server decodes the field with uuid's receive function, and the per-row Python uuid dumper was a
# fifth of the logger's client time (benchmarks/bench_metric_ingest.py).
METRIC_TYPES = ["bytea", "text", "int8", "int4", "float8", "timestamptz"]


def start_session(
    conn: psycopg.Connection, model_id: uuid.UUID | str, name: str, total_steps: int | None = None,
    total_epochs: int | None = None, hyperparameters: dict | None = None, dataset_name: str | None = None,
) -> uuid.UUID:
    with conn.transaction():
        return conn.execute(
            """insert into training_sessions (model_id, session_name, status, total_steps, total_epochs,
                                              hyperparameters, dataset_name, started_at, progress_updated_at)
               values (%s, %s, 'running', %s, %s, %s, %s, now(), now()) returning training_session_id""",
            (model_id, name, total_steps, total_epochs, json.dumps(hyperparameters or {}), dataset_name),
        ).fetchone()[0]


def update_progress(conn: psycopg.Connection, session_id: uuid.UUID | str, step: int, epoch: int | None = None) -> None:
    with conn.transaction():
        conn.execute(
            """update training_sessions set current_step = %s, current_epoch = coalesce(%s, current_epoch),
                   progress_updated_at = now() where training_session_id = %s""", (step, epoch, session_id))


def finish_session(conn: psycopg.Connection, session_id: uuid.UUID | str, status: str = "completed") -> None:
    with conn.transaction():
        conn.execute("update training_sessions set status = %s, ended_at = now() where training_session_id = %s",
                     (status, session_id))


@dataclass
class MetricLogger:
    """Buffer metrics and write them with binary COPY: `log` is a list append; `flush` is one round trip.

    Flushes when `buffer_rows` values are waiting or `flush_seconds` passed since the last flush, and on
    close / leaving a `with` block. Safe to use from several processes for one session: rows are only
    appended, and the latest-value upsert is ordered by key.
    """

    conn: psycopg.Connection
    session_id: uuid.UUID | str
    buffer_rows: int = 50_000
    flush_seconds: float = 5.0
    _rows: list = field(default_factory=list)
    _last_flush: float = field(default_factory=time.monotonic)
    _session_bytes: bytes = field(init=False)

    def __post_init__(self) -> None:
        self._session_bytes = uuid.UUID(str(self.session_id)).bytes

    def log(self, name: str, value: float, step: int, epoch: int | None = None, at: datetime | None = None) -> None:
        self._rows.append((self._session_bytes, name, step, epoch, float(value), at or datetime.now(timezone.utc)))
        self._flush_if_due()

    def log_many(self, values: dict[str, float], step: int, epoch: int | None = None) -> None:
        """Several metrics of one step, with one timestamp."""
        at, session = datetime.now(timezone.utc), self._session_bytes
        self._rows.extend([(session, name, step, epoch, float(value), at) for name, value in values.items()])
        self._flush_if_due()

    def _flush_if_due(self) -> None:
        if len(self._rows) >= self.buffer_rows or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> int:
        rows, self._rows = self._rows, []
        self._last_flush = time.monotonic()
        if not rows:
            return 0
        with bulk.copy_into(self.conn, "training_metrics", METRIC_COLUMNS, METRIC_TYPES) as copy:
            for row in rows:
                copy.write_row(row)
        return len(rows)

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(self, *exc_info) -> None:
        if exc_info[0] is None:
            self.flush()


@dataclass(frozen=True)
class Checkpoint:
    checkpoint_id: uuid.UUID
    step: int
    epoch: int
    weights: dict[str, np.ndarray]
    optimizer_type: str | None
    optimizer_hyperparameters: dict
    optimizer_state: dict[str, dict[str, np.ndarray]]  # parameter -> state name -> tensor


def save_checkpoint(
    conn: psycopg.Connection, model_id: uuid.UUID | str, session_id: uuid.UUID | str | None, step: int,
    weights: dict[str, np.ndarray], optimizer_state: dict[str, dict[str, np.ndarray]] | None = None,
    optimizer_type: str | None = None, optimizer_hyperparameters: dict | None = None, epoch: int = 0,
    metrics: dict | None = None, is_best: bool = False,
) -> uuid.UUID:
    """Weights and optimizer state (e.g. Adam's exp_avg / exp_avg_sq per parameter, SGD's
    momentum_buffer) in one transaction: a checkpoint is there whole or not at all."""
    if optimizer_state and not optimizer_type:
        raise InvalidInputError("optimizer_state needs optimizer_type (adam, adamw, sgd, ...)")
    with conn.transaction():
        weight_ids = {name: str(tensors.put(conn, array, name)) for name, array in weights.items()}
        if is_best and session_id is not None:
            conn.execute("update model_checkpoints set is_best = false where training_session_id = %s and is_best",
                         (session_id,))
        size = sum(array.nbytes for array in weights.values())
        checkpoint_id = conn.execute(
            """insert into model_checkpoints (model_id, training_session_id, step, epoch, metrics, weight_tensors,
                                              size_bytes, is_best)
               values (%s, %s, %s, %s, %s, %s, %s, %s) returning checkpoint_id""",
            (model_id, session_id, step, epoch, json.dumps(metrics or {}), json.dumps(weight_ids), size, is_best),
        ).fetchone()[0]
        for parameter, states in (optimizer_state or {}).items():
            for state_name, array in states.items():
                tensor_id = tensors.put(conn, array, f"{parameter}.{state_name}")
                size += array.nbytes
                conn.execute(
                    """insert into optimizer_state (training_session_id, checkpoint_id, optimizer_type, hyperparameters,
                                                    step, parameter_name, state_name, tensor_id)
                       values (%s, %s, %s, %s, %s, %s, %s, %s)""",
                    (session_id, checkpoint_id, optimizer_type, json.dumps(optimizer_hyperparameters or {}), step,
                     parameter, state_name, tensor_id),
                )
        conn.execute("update model_checkpoints set size_bytes = %s where checkpoint_id = %s", (size, checkpoint_id))
    return checkpoint_id


def load_checkpoint(conn: psycopg.Connection, checkpoint_id: uuid.UUID | str) -> Checkpoint:
    row = conn.execute("select step, epoch, weight_tensors from model_checkpoints where checkpoint_id = %s",
                       (checkpoint_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no checkpoint {checkpoint_id}")
    step, epoch, weight_ids = row
    weights = {name: tensors.get(conn, tensor_id) for name, tensor_id in weight_ids.items()}
    optimizer: dict[str, dict[str, np.ndarray]] = {}
    optimizer_type, hyperparameters = None, {}
    for optimizer_type, hyperparameters, parameter, state_name, tensor_id in conn.execute(
        """select optimizer_type, hyperparameters, parameter_name, state_name, tensor_id from optimizer_state
           where checkpoint_id = %s order by parameter_name, state_name""", (checkpoint_id,),
    ).fetchall():
        optimizer.setdefault(parameter, {})[state_name] = tensors.get(conn, tensor_id)
    return Checkpoint(checkpoint_id, step, epoch, weights, optimizer_type, hyperparameters, optimizer)


def mark_best(conn: psycopg.Connection, checkpoint_id: uuid.UUID | str) -> None:
    """Make this the session's best checkpoint (and no other)."""
    with conn.transaction():
        conn.execute(
            """update model_checkpoints set is_best = false where is_best and training_session_id =
                   (select training_session_id from model_checkpoints where checkpoint_id = %s)""", (checkpoint_id,))
        conn.execute("update model_checkpoints set is_best = true where checkpoint_id = %s", (checkpoint_id,))


def resume(conn: psycopg.Connection, session_id: uuid.UUID | str) -> Checkpoint | None:
    """Mark a session running again and return its latest checkpoint (None when it has none)."""
    with conn.transaction():
        conn.execute("update training_sessions set status = 'running', ended_at = null, progress_updated_at = now()"
                     " where training_session_id = %s", (session_id,))
        latest = conn.execute(
            "select checkpoint_id from model_checkpoints where training_session_id = %s"
            " order by step desc, created_at desc limit 1", (session_id,)).fetchone()
    return load_checkpoint(conn, latest[0]) if latest else None
