"""Tensor uploads over several connections at once, made visible in the caller's one transaction.

    with ParallelUpload(conn, workers=2) as upload:      # conn.transaction() spans the block
        ids = {name: upload.put(array, name) for name, array in arrays.items()}
        ...                                              # e.g. model_weights rows pointing at ids
    # leaving the block: the chunks are all written and checked, the tensors visible when conn commits
    # (at the end of the block when no transaction was open; inside one, when that one commits)

Each tensor's metadata row is committed first with a `pending_upload_id` (readers see only rows where
it is null: `lookups.VISIBLE`), so that worker connections can write its chunks beside it, each in one
transaction. Leaving the block waits for the workers, checks every tensor's chunk count and clears
`pending_upload_id` in the caller's transaction. An upload that dies leaves pending rows and chunks that
nobody reads; `remove_abandoned` (run by every upload, and by `arc-halo storage uploads --delete`) deletes them.
It knows a dead upload from a live one without a timeout: the caller's transaction holds an advisory
lock on the upload id from before its first row until it ends, and a killed client, a lost connection or
a restarted server ends it. Transaction-level locks work through transaction-mode poolers.

Behind a transaction-mode pooler the upload holds workers + 2 server connections at once (the caller's
transaction, one for the pending rows, one per worker's transaction); a pool that cannot lend them would
make it wait for itself until the pooler gives up. So it first asks the pooler for them, each within
`pool_wait_seconds`: it runs with as many workers as it got (logging a warning when fewer than asked),
and with none it stops at once, saying what to change.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import queue
import select
import threading
import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Final

import numpy as np
import psycopg

from arc_halo import db, tenancy, tensors
from arc_halo.errors import ConfigurationError, InvalidInputError, public_call
from arc_halo.rows import one_row, one_value
from arc_halo.tensor_codec import ChunkRange
from arc_halo.validation import whole_number

DEFAULT_WORKERS = 2
MAX_WORKERS = 64  # each is a server connection
# Behind a pooler: how long one server connection may take to come free before the upload counts it as
# one the pool cannot lend.
POOL_WAIT_SECONDS = 5.0
log = logging.getLogger(__name__)
# A worker writes up to this many bytes of queued chunks in one COPY (fewer statements for small tensors).
_BATCH_BYTES = 8 << 20


class _End(enum.Enum):
    DONE = enum.auto()


_DONE: Final = _End.DONE  # a worker's last job

_LOCK_KEY = "hashtextextended('arc_halo.tensor_upload:' || {}::text, 0)"


# Uploads with pending rows whose transaction has ended: their advisory lock is free (this transaction
# takes it, so an upload cannot start under the same id meanwhile), with their pending row counts.
_ENDED_UPLOADS = f"""pending as materialized (
        select pending_upload_id, count(*) as tensors from tensor_metadata
        where pending_upload_id is not null group by pending_upload_id),
    ended as materialized (
        select pending_upload_id, tensors from pending
        where pg_try_advisory_xact_lock({_LOCK_KEY.format('pending_upload_id')}))"""


@public_call
def remove_abandoned(conn: psycopg.Connection) -> int:
    """Delete the pending tensors (and, by cascade, the chunks) of uploads whose transaction has ended
    without making them visible; returns how many tensor rows went. Uploads in flight are untouched: their
    advisory lock is held. Runs in its own transaction (or the caller's); sees the tenant's rows only
    where row-level security applies."""
    with conn.transaction():
        return conn.execute(f"""with {_ENDED_UPLOADS}
                                delete from tensor_metadata
                                where pending_upload_id in (select pending_upload_id from ended)""").rowcount


@public_call
def find_abandoned(conn: psycopg.Connection) -> tuple[int, int]:
    """(uploads, tensor rows) that `remove_abandoned` would delete now."""
    with conn.transaction():
        uploads, tensor_rows = one_row(conn.execute(
            f"with {_ENDED_UPLOADS} select count(*), coalesce(sum(tensors), 0)::bigint from ended"))
    return uploads, tensor_rows


class ParallelUpload:
    """Write tensors' chunks over `workers` connections; see the module docstring.

    `connect` makes a worker connection for a tenant (default: `db.connect` with the caller's own
    parameters, pooled when the caller's prepared statements are off); every worker acts as the tenant
    of the caller's transaction. Behind a pooler, an upload holds workers + 2 server connections at once
    (the caller's, one for the pending rows, one per worker): with a smaller pool it uses fewer workers,
    or stops at once when it cannot have one (see the module docstring)."""

    def __init__(self, conn: psycopg.Connection, workers: int = DEFAULT_WORKERS,
                 chunk_bytes: int = tensors.DEFAULT_CHUNK_BYTES,
                 connect: Callable[[str | None], psycopg.Connection] | None = None,
                 pool_wait_seconds: float = POOL_WAIT_SECONDS):
        if not isinstance(conn, psycopg.Connection):
            raise InvalidInputError(f"ParallelUpload needs a psycopg connection, got {type(conn).__name__}")
        whole_number("workers", workers, 1, MAX_WORKERS)
        whole_number("chunk_bytes", chunk_bytes, 1, 2**31 - 1)
        if connect is not None and not callable(connect):
            raise InvalidInputError(f"connect must be a callable returning a connection, got {connect!r}")
        self.conn, self.workers, self.chunk_bytes = conn, workers, chunk_bytes
        self.upload_id = uuid.uuid4()
        conninfo = None if connect else db.conninfo_of(conn)
        if conninfo is not None:  # refused here, before the caller's transaction starts
            db.check_transport(conninfo, source="ParallelUpload workers")
        pooled = conn.prepare_threshold is None  # behind a transaction-mode pooler the workers are too
        self._pooled, self._pool_wait_seconds = pooled, pool_wait_seconds
        self._connect = connect or (lambda tenant: db.connect(conninfo, tenant=tenant, pooled=pooled))
        self._jobs: queue.Queue[ChunkRange | _End] = queue.Queue(maxsize=4 * workers)
        self._errors: list[BaseException] = []
        self._aborted = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connections: list[psycopg.Connection] = []
        # (digest, dtype, shape) -> id, for repeats within the upload
        self._known: dict[tuple[str, str, tuple[int, ...]], uuid.UUID] = {}
        self._transaction: contextlib.AbstractContextManager[psycopg.Transaction] | None = None
        self._control: psycopg.Connection | None = None
        self.tenant: str | None = None

    # -- the caller's side ------------------------------------------------------------------------------

    def __enter__(self) -> ParallelUpload:
        self._transaction = self.conn.transaction()
        self._transaction.__enter__()
        try:
            if one_value(self.conn.execute("select current_setting('transaction_isolation')")) != "read committed":
                raise InvalidInputError("a parallel upload needs a read committed transaction: it must see the "
                                        "chunks its workers commit")
            self.tenant = db.tenant_of(self.conn)
            self.conn.execute(f"select pg_advisory_xact_lock({_LOCK_KEY.format('%s')})", (self.upload_id,))
            if self._pooled:
                self._fit_to_pool()
            self._control = self._open()
            remove_abandoned(self._control)
            for _ in range(self.workers):
                worker_conn = self._open()
                thread = threading.Thread(target=self._work, args=(worker_conn,), daemon=True,
                                          name=f"arc-halo-upload-{len(self._threads)}")
                thread.start()
                self._threads.append(thread)
        except BaseException as exc:
            self._abort(exc)
            raise
        return self

    def put(self, array: np.ndarray, name: str, content_sha256: str | None = None) -> uuid.UUID:
        """Queue `array` for writing; returns its tensor_id (a stored tensor's, when this tenant already
        holds the same bytes, dtype and shape). The tensor is visible once the block ends and the caller's
        transaction commits."""
        self._raise_worker_error()
        tensor = tensors.TensorBytes.of(array, content_sha256)
        key = (tensor.content_sha256, tensor.dtype, tuple(tensor.shape))
        if key in self._known:
            return self._known[key]
        tensor_id = tensors.find_stored(self.conn, tensor)
        if tensor_id is None:
            if self._control is None:
                raise InvalidInputError("ParallelUpload.put works inside its block: `with ParallelUpload(conn) as upload:`")
            with self._control.transaction():
                tensor_id = tensors.insert_metadata(self._control, tensor, name, self.chunk_bytes,
                                                    pending_upload_id=self.upload_id)
            count = tensor.chunk_count(self.chunk_bytes)
            share = max(1, -(-count // self.workers))  # contiguous ranges, one per worker at most
            for start in range(0, count, share):
                self._queue((tensor_id, tensor.raw, self.chunk_bytes, range(start, min(start + share, count))))
        self._known[key] = tensor_id
        return tensor_id

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> bool | None:
        if exc is None:
            try:
                self._finish()
            except BaseException as error:
                self._abort(error)
                raise
            self._close_connections()
            return self._caller_transaction().__exit__(None, None, None)
        self._abort(exc)
        return False

    def _finish(self) -> None:
        for _ in self._threads:
            self._queue(_DONE)
        for thread in self._threads:
            thread.join()
        self._raise_worker_error()
        incomplete = self.conn.execute(
            f"""select tensor_name, chunk_count,
                      (select count(*) from tensor_data d where d.tenant_id = m.tenant_id and d.tensor_id = m.tensor_id)
               from tensor_metadata m where pending_upload_id = %s and tenant_id = {tenancy.CURRENT_TENANT}
                 and chunk_count <> (select count(*) from tensor_data d
                                     where d.tenant_id = m.tenant_id and d.tensor_id = m.tensor_id)
               limit 1""", (self.upload_id,)).fetchone()
        if incomplete:
            raise tensors.TensorIntegrityError(f"parallel upload {self.upload_id}: tensor {incomplete[0]} has "
                                               f"{incomplete[2]} of {incomplete[1]} chunks; nothing was made visible")
        self.conn.execute("update tensor_metadata set pending_upload_id = null, updated_at = now()"
                          f" where pending_upload_id = %s and tenant_id = {tenancy.CURRENT_TENANT}", (self.upload_id,))

    def _abort(self, exc: BaseException) -> None:
        """Stop the workers (their transactions roll back), end the caller's block with `exc`, and delete
        this upload's pending rows at once rather than leaving them to the next upload."""
        self._aborted.set()
        while any(thread.is_alive() for thread in self._threads):  # end markers until every worker has left
            try:
                self._jobs.put(_DONE, timeout=0.05)
            except queue.Full:
                pass
        try:
            self._caller_transaction().__exit__(type(exc), exc, exc.__traceback__)
        finally:
            try:
                if self._control is not None and not self._control.closed:
                    with self._control.transaction():
                        self._control.execute("delete from tensor_metadata where pending_upload_id = %s",
                                              (self.upload_id,))
            except psycopg.Error:
                pass  # the server is gone: the next upload or `arc-halo tensors cleanup` removes the rows
            self._close_connections()

    def _caller_transaction(self) -> contextlib.AbstractContextManager[psycopg.Transaction]:
        if self._transaction is None:
            raise InvalidInputError("ParallelUpload was left without being entered: use `with ParallelUpload(conn) as upload:`")
        return self._transaction

    def _fit_to_pool(self) -> None:
        """Behind a pooler: as many workers as the pool lends server connections beside the caller's and
        the pending rows' one; none is an error now rather than a wait for itself."""
        lent = self._pool_capacity(self.workers + 1)
        if lent < 2:
            raise ConfigurationError(
                f"the pooler lent this parallel upload {lent + 1} server connection(s) at once (its caller's "
                f"included) within {self._pool_wait_seconds:g} s; it needs at least 3 (the caller's, one for "
                "the pending rows, one per worker): raise the pool size (PgBouncer default_pool_size), upload "
                "over a direct connection, or use tensors.put; nothing was written")
        if lent - 1 < self.workers:
            log.warning("parallel upload %s: the pooler lends %d server connection(s) beside the caller's; using "
                        "%d worker(s) instead of %d", self.upload_id, lent, lent - 1, self.workers)
            self.workers = lent - 1

    def _pool_capacity(self, wanted: int) -> int:
        """How many server connections (up to `wanted`) the pooler lends this upload at once besides the
        caller's: each probe opens a transaction and keeps it until all are counted. A probe that gets no
        server within pool_wait_seconds is closed, which takes it out of the pooler's queue. The probes are
        bare connections like the caller's: opening one must not itself wait for a server (as registering
        the vector type would)."""
        conninfo = db.conninfo_of(self.conn)
        probes: list[psycopg.Connection] = []
        try:
            for _ in range(wanted):
                probe = db.TenantConnection.connect(conninfo, pooled=True)
                probes.append(probe)
                if not _server_within(probe, self._pool_wait_seconds):
                    return len(probes) - 1
            return len(probes)
        finally:
            for opened in probes:
                opened.close()

    def _queue(self, job: ChunkRange | _End) -> None:
        while True:
            self._raise_worker_error()
            try:
                self._jobs.put(job, timeout=0.2)
                return
            except queue.Full:
                continue

    def _raise_worker_error(self) -> None:
        if self._errors:
            raise self._errors[0]

    def _open(self) -> psycopg.Connection:
        conn = self._connect(self.tenant)
        self._connections.append(conn)
        return conn

    def _close_connections(self) -> None:
        for conn in self._connections:
            conn.close()
        self._connections.clear()

    # -- the workers' side ------------------------------------------------------------------------------

    def _work(self, conn: psycopg.Connection) -> None:
        """Write queued chunks in one transaction, committed when the upload ends (rolled back if aborted)."""
        done = False
        try:
            with conn.transaction():
                while not done:
                    batch: list[ChunkRange] = []
                    size = 0
                    job = self._jobs.get()
                    while job is not _DONE:
                        batch.append(job)  # its memoryview keeps the array alive until the chunks are written
                        size += len(job[3]) * job[2]
                        if size >= _BATCH_BYTES:
                            break
                        try:
                            job = self._jobs.get_nowait()
                        except queue.Empty:
                            break
                    done = job is _DONE
                    if self._aborted.is_set() or self._errors:
                        raise _Aborted
                    if batch:
                        tensors.write_chunks(conn, batch)
        except _Aborted:
            pass
        except BaseException as exc:  # the caller raises it from put() or at the end of the block
            self._errors.append(exc)
        # After a failure, take jobs until this worker's end marker, so the caller never blocks on a full queue.
        while not done:
            done = self._jobs.get() is _DONE


class _Aborted(Exception):
    pass


def _server_within(conn: psycopg.Connection, seconds: float) -> bool:
    """Open a transaction on `conn` (libpq directly: the connection is thrown away afterwards) and say
    whether the server answered within `seconds`; behind a pooler, whether it lent a server connection."""
    pgconn = conn.pgconn
    pgconn.send_query(b"begin; select 1")
    deadline = time.monotonic() + seconds
    while True:
        pgconn.consume_input()
        if not pgconn.is_busy():
            while pgconn.get_result() is not None:
                pass
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        select.select([pgconn.socket], [], [], remaining)
