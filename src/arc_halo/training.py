"""Training runs from ML code: sessions, progress, buffered metric logging, checkpoints that restore exactly.

Metrics go through MetricLogger: values are checked and buffered in memory and written with one binary
COPY per flush (through a staging table when row-level security applies, see bulk.py), each flush
recorded in metric_batches so a retried flush writes nothing twice; the training_metrics_after_insert
trigger keeps training_metrics_latest current for every flush.
"""

from __future__ import annotations

import json
import logging
import numbers
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

import numpy as np
import psycopg

from arc_halo import bulk, db, tensors
from arc_halo.errors import IntegrityError, InvalidInputError, NotFoundError, first_line, public_call
from arc_halo.rows import one_value
from arc_halo.tenancy import CURRENT_TENANT
from arc_halo.validation import (as_uuid, json_object, metric_name, numeric_array, optional_time, optional_uuid,
                                 optional_whole_number, real_number)

METRIC_COLUMNS = ("training_session_id", "metric_name", "step", "epoch", "value", "recorded_at")
# The session id is sent as its 16 raw bytes with psycopg's C bytea dumper: binary COPY carries no types,
# the server decodes the field with uuid's receive function, and the per-row Python uuid dumper was a
# fifth of the logger's client time (benchmarks/bench_metric_ingest.py).
METRIC_TYPES = ["bytea", "text", "int8", "int4", "float8", "timestamptz"]


@public_call
def start_session(
    conn: psycopg.Connection, model_id: uuid.UUID | str, name: str, total_steps: int | None = None,
    total_epochs: int | None = None, hyperparameters: dict[str, Any] | None = None, dataset_name: str | None = None,
    at: datetime | None = None,
) -> uuid.UUID:
    """A running training session of the model; `at` backdates its start (default: now)."""
    model_id, hyperparameters_json = as_uuid("model id", model_id), json_object("hyperparameters", hyperparameters)
    at = optional_time("at", at)
    with conn.transaction():
        session_id: uuid.UUID = one_value(conn.execute(
            """insert into training_sessions (model_id, session_name, status, total_steps, total_epochs,
                                              hyperparameters, dataset_name, started_at, progress_updated_at)
               values (%s, %s, 'running', %s, %s, %s, %s, coalesce(%s, now()), coalesce(%s, now()))
               returning training_session_id""",
            (model_id, name, total_steps, total_epochs, hyperparameters_json, dataset_name, at, at),
        ))
        return session_id


def _require_session(conn: psycopg.Connection, session_id: uuid.UUID | str) -> None:
    _require_updated(conn.execute(f"select from training_sessions where training_session_id = %s and tenant_id = {CURRENT_TENANT}",
                                  (as_uuid("session id", session_id),)), session_id)


def _require_updated(cursor: psycopg.Cursor, session_id: uuid.UUID | str) -> None:
    """A statement on one session matched it: or the id names no session (visible to this tenant)."""
    if cursor.rowcount == 0:
        raise NotFoundError(f"no training session {session_id}: see `select training_session_id, session_name "
                            f"from training_sessions`")


@public_call
def update_progress(conn: psycopg.Connection, session_id: uuid.UUID | str, step: int, epoch: int | None = None) -> None:
    _check_step(step, epoch)
    with conn.transaction():
        _require_updated(conn.execute(
            f"""update training_sessions set current_step = %s, current_epoch = coalesce(%s, current_epoch),
                   progress_updated_at = now() where training_session_id = %s and tenant_id = {CURRENT_TENANT}""", (step, epoch, as_uuid("session id", session_id))),
            session_id)


@public_call
def finish_session(conn: psycopg.Connection, session_id: uuid.UUID | str, status: str = "completed") -> None:
    with conn.transaction():
        _require_updated(conn.execute(
            f"update training_sessions set status = %s, ended_at = now() where training_session_id = %s and tenant_id = {CURRENT_TENANT}",
            (status, as_uuid("session id", session_id))), session_id)


MAX_STEP = 2**63 - 1  # bigint
MAX_EPOCH = 2**31 - 1  # integer

log = logging.getLogger(__name__)


def _check_step(step: object, epoch: object) -> None:
    if type(step) is not int:  # the fast path; numpy integers and other Integrals are accepted below
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):
            raise InvalidInputError(f"step must be a whole number, got {step!r}")
        step = int(step)
    if not 0 <= step <= MAX_STEP:
        raise InvalidInputError(f"step must be between 0 and {MAX_STEP}, got {step}")
    if epoch is not None:
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or not 0 <= int(epoch) <= MAX_EPOCH:
            raise InvalidInputError(f"epoch must be a whole number between 0 and {MAX_EPOCH} (or None), got {epoch!r}")


def _is_real_number(value: object) -> bool:
    """Python and numpy reals and 0-d arrays/tensors of them; not bools, text, complex numbers or arrays."""
    if value is None or isinstance(value, (bool, np.bool_, str, bytes, bytearray)):
        return False
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        return False  # float() of a numpy complex drops the imaginary part with only a warning
    dtype = getattr(value, "dtype", None)
    if getattr(dtype, "kind", "f") not in "iuf" or getattr(value, "ndim", 0) != 0:
        return False
    return not getattr(value, "is_complex", lambda: False)()  # torch tensors


def _check_value(name: str, value: object) -> float:
    """float(value) from a Python or numpy number or a 0-d array/tensor; NaN and infinities are data, a
    number too large for double precision (10**400) is not."""
    if type(value) is float:
        return value
    if not _is_real_number(value):
        raise InvalidInputError(f"metric {name!r}: value must be a real number, got {_shown(value)}")
    try:
        return float(value)  # type: ignore[arg-type]  # whatever passed the check; float()'s refusal is caught below
    except Exception as exc:  # noqa: BLE001 - OverflowError, TypeError, a __float__ of the caller's that fails
        raise InvalidInputError(f"metric {name!r}: value must be a real number that fits double precision, "
                                f"got {_shown(value)} ({type(exc).__name__}: {exc})") from None


def _shown(value: object, limit: int = 60) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ of the caller's
        text = f"a {type(value).__name__}"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


@public_call
def copy_metric_rows(conn: psycopg.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Write metric rows (session id bytes, name, step, epoch, value, recorded_at) with one binary COPY.
    The one place the logger's rows go to the server."""
    if not isinstance(rows, (list, tuple)):
        raise InvalidInputError(f"rows must be a list of metric rows, got {type(rows).__name__}")
    with bulk.copy_into(conn, "training_metrics", METRIC_COLUMNS, METRIC_TYPES) as copy:
        for row in rows:
            copy.write_row(row)


def _reopener(conn: psycopg.Connection) -> Callable[[], psycopg.Connection]:
    """A new connection like `conn` (same connection string, password, autocommit and tenant), read now:
    a broken connection can no longer say where it went."""
    conninfo, autocommit, kind = db.conninfo_of(conn), conn.autocommit, type(conn)
    options: dict[str, Any] = {}  # keyword arguments of `kind.connect`
    if isinstance(conn, db.TenantConnection):
        options = {"tenant": db.tenant_of(conn), "pooled": conn.prepare_threshold is None}

    def reopen() -> psycopg.Connection:
        db.check_transport(conninfo, source="MetricLogger reconnect")  # whatever class `conn` was
        return kind.connect(conninfo, autocommit=autocommit, **options)

    return reopen


@dataclass
class _Batch:
    """Rows handed to the server together, under an id that stays the same across retries."""

    batch_id: uuid.UUID
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True)
class RejectedValue:
    """A value `log` accepted that the database refused (kept, not written; see MetricLogger.rejected)."""

    metric_name: str
    step: int
    epoch: int | None
    value: float
    recorded_at: datetime
    reason: str


# The server's answers that are about a batch's data (SQLSTATE classes 22 and 23), and the client's
# failure to encode a value: deterministic, so retrying the same rows fails the same way for ever.
_DATA_ERRORS = (psycopg.DataError, psycopg.IntegrityError, UnicodeError)


def _refused_for_its_data(exc: BaseException) -> bool:
    """The server's (or the encoder's) refusal of a batch's data, also when a public call has translated
    it into an ArcHaloError (the original is its cause)."""
    return isinstance(exc, _DATA_ERRORS) or isinstance(exc.__cause__, _DATA_ERRORS)


@dataclass
class MetricLogger:
    """Buffer metrics and write them with binary COPY: `log` checks the value and appends; `flush` is one
    round trip.

    Never loses a value it accepted: `log`/`log_many` refuse with InvalidInputError whatever the database
    cannot store (a name with NUL or a lone surrogate, a value beyond double precision; the values before
    it stay accepted). A flush that fails keeps its rows and raises; the next flush writes them,
    reconnecting first when the connection broke (`reconnect`, a callable returning a new connection; by
    default the same connection string). Each batch records its id in metric_batches in the batch's own
    transaction, so a retry after an ambiguous failure (connection lost during commit) writes nothing twice.

    Should the database still refuse a batch for its data (a constraint the checks here do not know),
    the batch is split until the refused values stand alone: every other value is written, and each
    refused one is logged in one line and kept in `rejected`; `close` (and leaving a `with` block
    normally) then raises IntegrityError naming them. One value never blocks the flushes after it.

    Flushes when `buffer_rows` values are waiting or `flush_seconds` passed since the last flush, on
    close, and when leaving a `with` block, also on an exception (logging one line if that flush fails,
    then letting the exception through). Safe to use from several processes for one session: rows are
    only appended, and the latest-value upsert is ordered by key.
    """

    conn: psycopg.Connection
    session_id: uuid.UUID | str
    buffer_rows: int = 50_000
    flush_seconds: float = 5.0
    reconnect: Callable[[], psycopg.Connection] | None = None
    rejected: list[RejectedValue] = field(default_factory=list, init=False)
    _rows: list[tuple[Any, ...]] = field(default_factory=list)
    _unwritten: list[_Batch] = field(default_factory=list)
    _last_flush: float = field(default_factory=time.monotonic)
    _session_bytes: bytes = field(init=False)
    _known_names: set[str] = field(default_factory=set)
    _reported: int = 0  # rejected values close() has raised about

    def __post_init__(self) -> None:
        if not isinstance(self.conn, psycopg.Connection):
            raise InvalidInputError(f"MetricLogger needs a psycopg connection, got {type(self.conn).__name__}")
        optional_whole_number("buffer_rows", self.buffer_rows, 1, 10**9)
        real_number("flush_seconds", self.flush_seconds)
        if self.reconnect is not None and not callable(self.reconnect):
            raise InvalidInputError(f"reconnect must be a callable returning a connection, got {self.reconnect!r}")
        self._session_bytes = as_uuid("session id", self.session_id).bytes
        with self.conn.transaction():
            _require_session(self.conn, self.session_id)
        if self.reconnect is None:
            self.reconnect = _reopener(self.conn)

    def _name(self, name: str) -> str:
        if type(name) is not str or name not in self._known_names:
            self._known_names.add(metric_name(name))
        return name

    def log(self, name: str, value: float, step: int, epoch: int | None = None, at: datetime | None = None) -> None:
        _check_step(step, epoch)
        row = (self._session_bytes, self._name(name), step, epoch, _check_value(name, value),
               optional_time("at", at) or datetime.now(timezone.utc))
        self._rows.append(row)
        self._flush_if_due()

    def log_many(self, values: dict[str, float], step: int, epoch: int | None = None) -> None:
        """Several metrics of one step, with one timestamp. A bad name or value raises and none of this
        call's values are taken (the step is refused whole); values logged before stay accepted."""
        _check_step(step, epoch)
        if not isinstance(values, Mapping):
            raise InvalidInputError(f"log_many takes a dict of metric name -> value, got {_shown(values)}")
        at, session = datetime.now(timezone.utc), self._session_bytes
        if not self._known_names.issuperset(values) or any(type(value) is not float for value in values.values()):
            values = {self._name(name): _check_value(name, value) for name, value in values.items()}
        self._rows.extend([(session, name, step, epoch, value, at) for name, value in values.items()])
        self._flush_if_due()

    def _flush_if_due(self) -> None:
        if len(self._rows) >= self.buffer_rows or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    @property
    def pending(self) -> int:
        """Values accepted and not yet known to be written (nor refused by the database)."""
        return len(self._rows) + sum(len(batch.rows) for batch in self._unwritten)

    def flush(self) -> int:
        """Write every accepted value; returns the number of rows this call wrote. On a connection failure
        the rows stay (under their batch ids) for the next flush, and the error is raised."""
        if self._rows:
            self._unwritten.append(_Batch(uuid.uuid4(), self._rows))
            self._rows = []
        self._last_flush = time.monotonic()
        written = 0
        while self._unwritten:
            batch = self._unwritten[0]
            try:
                written += self._write(batch)
            except Exception as exc:
                if not _refused_for_its_data(exc):
                    raise
                self._isolate(exc)
                continue
            self._unwritten.pop(0)
        return written

    def _isolate(self, exc: BaseException) -> None:
        """The first unwritten batch was refused for its data. Its transaction was rolled back (the server
        answered), so its id was never recorded: it is replaced by its two halves under new ids, and a
        single refused row is set aside in `rejected`. A batch with k bad rows of n costs about
        2k log2(n) more transactions. A session deleted meanwhile refuses every row: NotFoundError."""
        if self.conn.closed or self.conn.broken:
            raise exc
        with self.conn.transaction():
            _require_session(self.conn, self.session_id)
        batch = self._unwritten.pop(0)
        if len(batch.rows) > 1:
            middle = len(batch.rows) // 2
            self._unwritten[0:0] = [_Batch(uuid.uuid4(), batch.rows[:middle]), _Batch(uuid.uuid4(), batch.rows[middle:])]
            return
        _, name, step, epoch, value, at = batch.rows[0]
        refused = RejectedValue(name, step, epoch, value, at, first_line(exc))
        self.rejected.append(refused)
        log.error("MetricLogger: the database refused metric %r = %r at step %d of session %s, not written: %s",
                  name, value, step, self.session_id, refused.reason)

    def _write(self, batch: _Batch) -> int:
        if self.conn.closed or self.conn.broken:
            if self.reconnect is None:  # set by __post_init__; None only when a caller cleared it since
                raise InvalidInputError("MetricLogger.reconnect must be a callable returning a connection, got None")
            self.conn = self.reconnect()
        with self.conn.transaction():
            recorded = self.conn.execute(
                """insert into metric_batches (metric_batch_id, training_session_id, row_count) values (%s, %s, %s)
                   on conflict (metric_batch_id, tenant_id) do nothing""",
                (batch.batch_id, self.session_id, len(batch.rows))).rowcount
            if not recorded:  # an earlier attempt committed before its connection was lost
                return 0
            copy_metric_rows(self.conn, batch.rows)
        return len(batch.rows)

    def close(self) -> None:
        """Flush; then, if the database refused values since the last close, raise IntegrityError naming
        them (they are in `rejected`; everything else is written)."""
        self.flush()
        if len(self.rejected) > self._reported:
            first, count = self.rejected[self._reported], len(self.rejected) - self._reported
            self._reported = len(self.rejected)
            raise IntegrityError(
                f"the database refused {count} metric value(s) of session {self.session_id} that were "
                f"not written (the first: {first.metric_name!r} at step {first.step}: {first.reason}); all other "
                "values are stored, the refused ones are in MetricLogger.rejected")

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # keep what was logged before the exception, then let the exception through
            self.flush()
        except Exception as flush_error:  # noqa: BLE001 - the caller's exception matters more
            log.error("MetricLogger: %d metric values of session %s not written while leaving on %s: %s",
                      self.pending, self.session_id, exc_type.__name__, first_line(flush_error))


@dataclass(frozen=True)
class Checkpoint:
    checkpoint_id: uuid.UUID
    step: int
    epoch: int
    weights: dict[str, np.ndarray]
    optimizer_type: str | None
    optimizer_hyperparameters: dict[str, Any]
    optimizer_state: dict[str, dict[str, np.ndarray]]  # parameter -> state name -> tensor


@public_call
def save_checkpoint(
    conn: psycopg.Connection, model_id: uuid.UUID | str, session_id: uuid.UUID | str | None, step: int,
    weights: dict[str, np.ndarray], optimizer_state: dict[str, dict[str, np.ndarray]] | None = None,
    optimizer_type: str | None = None, optimizer_hyperparameters: dict[str, Any] | None = None, epoch: int = 0,
    metrics: dict[str, Any] | None = None, is_best: bool = False, at: datetime | None = None,
) -> uuid.UUID:
    """Weights and optimizer state (e.g. Adam's exp_avg / exp_avg_sq per parameter, SGD's
    momentum_buffer) in one transaction: a checkpoint is there whole or not at all. Weights already
    stored (the same bytes) are referenced, not written again; `at` backdates the checkpoint."""
    if optimizer_state and not optimizer_type:
        raise InvalidInputError("optimizer_state needs optimizer_type (adam, adamw, sgd, ...)")
    model_id, session_id = as_uuid("model id", model_id), optional_uuid("session id", session_id)
    _check_step(step, epoch)
    if not isinstance(weights, dict) or not all(isinstance(name, str) for name in weights):
        raise InvalidInputError(f"weights must be a dict of parameter name to numpy array, got {type(weights).__name__}")
    weights = {name: numeric_array(f"weight {name!r}", value) for name, value in weights.items()}
    if not isinstance(optimizer_state or {}, dict) or not all(
            isinstance(states, dict) for states in (optimizer_state or {}).values()):
        raise InvalidInputError("optimizer_state must map parameter names to dicts of state name to numpy array")
    optimizer_state = {parameter: {state: numeric_array(f"optimizer state {parameter}.{state}", value)
                                   for state, value in states.items()} for parameter, states in (optimizer_state or {}).items()}
    metrics_json, hyperparameters_json = json_object("metrics", metrics), json_object("optimizer_hyperparameters",
                                                                                     optimizer_hyperparameters)
    if not isinstance(is_best, bool):
        raise InvalidInputError(f"is_best must be True or False, got {is_best!r}")
    at = optional_time("at", at)
    with conn.transaction():
        weight_ids = {name: str(tensors.put(conn, array, name)) for name, array in weights.items()}
        if is_best and session_id is not None:
            conn.execute(f"update model_checkpoints set is_best = false where training_session_id = %s and is_best"
                         f" and tenant_id = {CURRENT_TENANT}",
                         (session_id,))
        size = sum(array.nbytes for array in weights.values())
        checkpoint_id: uuid.UUID = one_value(conn.execute(
            """insert into model_checkpoints (model_id, training_session_id, step, epoch, metrics, weight_tensors,
                                              size_bytes, is_best, created_at)
               values (%s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now())) returning checkpoint_id""",
            (model_id, session_id, step, epoch, metrics_json, json.dumps(weight_ids), size, is_best, at),
        ))
        for parameter, states in (optimizer_state or {}).items():
            for state_name, array in states.items():
                tensor_id = tensors.put(conn, array, f"{parameter}.{state_name}")
                size += array.nbytes
                conn.execute(
                    """insert into optimizer_state (training_session_id, checkpoint_id, optimizer_type, hyperparameters,
                                                    step, parameter_name, state_name, tensor_id)
                       values (%s, %s, %s, %s, %s, %s, %s, %s)""",
                    (session_id, checkpoint_id, optimizer_type, hyperparameters_json, step,
                     parameter, state_name, tensor_id),
                )
        conn.execute(f"update model_checkpoints set size_bytes = %s where checkpoint_id = %s and tenant_id = {CURRENT_TENANT}",
                     (size, checkpoint_id))
    return checkpoint_id


@public_call
def load_checkpoint(conn: psycopg.Connection, checkpoint_id: uuid.UUID | str) -> Checkpoint:
    checkpoint_id = as_uuid("checkpoint id", checkpoint_id)
    row = conn.execute(f"select step, epoch, weight_tensors from model_checkpoints where checkpoint_id = %s"
                       f" and tenant_id = {CURRENT_TENANT}",
                       (checkpoint_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no checkpoint {checkpoint_id}")
    step, epoch, weight_ids = row
    weights = {name: tensors.get(conn, tensor_id) for name, tensor_id in weight_ids.items()}
    optimizer: dict[str, dict[str, np.ndarray]] = {}
    optimizer_type, hyperparameters = None, {}
    for optimizer_type, hyperparameters, parameter, state_name, tensor_id in conn.execute(
        f"""select optimizer_type, hyperparameters, parameter_name, state_name, tensor_id from optimizer_state
           where checkpoint_id = %s and tenant_id = {CURRENT_TENANT} order by parameter_name, state_name""", (checkpoint_id,),
    ).fetchall():
        optimizer.setdefault(parameter, {})[state_name] = tensors.get(conn, tensor_id)
    return Checkpoint(checkpoint_id, step, epoch, weights, optimizer_type, hyperparameters, optimizer)


@public_call
def mark_best(conn: psycopg.Connection, checkpoint_id: uuid.UUID | str) -> None:
    """Make this the session's best checkpoint (and no other)."""
    checkpoint_id = as_uuid("checkpoint id", checkpoint_id)
    with conn.transaction():
        conn.execute(
            f"""update model_checkpoints set is_best = false where is_best and tenant_id = {CURRENT_TENANT}
                   and training_session_id = (select training_session_id from model_checkpoints
                                              where checkpoint_id = %s and tenant_id = {CURRENT_TENANT})""", (checkpoint_id,))
        if conn.execute(f"update model_checkpoints set is_best = true where checkpoint_id = %s and tenant_id = {CURRENT_TENANT}",
                        (checkpoint_id,)).rowcount == 0:
            raise NotFoundError(f"no checkpoint {checkpoint_id}")


@public_call
def resume(conn: psycopg.Connection, session_id: uuid.UUID | str) -> Checkpoint | None:
    """Mark a session running again and return its latest checkpoint (None when it has none)."""
    with conn.transaction():
        _require_updated(conn.execute(
            "update training_sessions set status = 'running', ended_at = null, progress_updated_at = now()"
            f" where training_session_id = %s and tenant_id = {CURRENT_TENANT}", (as_uuid("session id", session_id),)), session_id)
        latest = conn.execute(
            f"select checkpoint_id from model_checkpoints where training_session_id = %s and tenant_id = {CURRENT_TENANT}"
            " order by step desc, created_at desc limit 1", (session_id,)).fetchone()
    return load_checkpoint(conn, latest[0]) if latest else None
