"""Read-only connections for analysts, monitors and the library's reads: a read replica when one is
configured, else a read-only transaction on the primary.

ARC_HALO_REPLICA_URL names the replica (on Neon a read-replica compute's host: its own endpoint on the
same branch, streaming from the primary). Remote hosts must use TLS, as for every connection. Without
the variable, `connect_replica()` connects to the library's usual database with every transaction
`READ ONLY`, so code written for a replica behaves the same (it cannot write) on a laptop.

The library's reads take any connection: pass a replica connection to `search.nearest`,
`hf.export_model`, `tensors.get` or a query of `v_training_progress`, and they read there; the CLI's
`--replica` flag does the same for `model export` and `plot training`. A write on such a connection
raises `ReadOnlyConnectionError` (one line) instead of psycopg's ReadOnlySqlTransaction.

How far the replica is behind: `select * from analytics.replication_lag` (on the replica, or on the
primary, where it says it is the primary and 0), or `lag(conn)` here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

import psycopg
from pgvector.psycopg import register_vector

from arc_halo import connecting, db, targets
from arc_halo.conninfo import parse_database_url, parsed_conninfo
from arc_halo.errors import (ConfigurationError, InvalidInputError, ReadOnlyConnectionError,
                             describe_connection_failure, first_line, public_call)

REPLICA_URL_VARIABLE = "ARC_HALO_REPLICA_URL"


def replica_url() -> str | None:
    """The configured replica's URL (TLS checked for remote hosts), or None when none is configured."""
    value = os.environ.get(REPLICA_URL_VARIABLE)
    return parse_database_url(value, REPLICA_URL_VARIABLE).url if value else None


def _read_only_error(exc: psycopg.errors.ReadOnlySqlTransaction) -> ReadOnlyConnectionError:
    reason = first_line(exc)
    return ReadOnlyConnectionError(
        f"this connection is read-only (a read replica, or {REPLICA_URL_VARIABLE} unset and the primary read "
        f"only): {reason}; nothing was written. Write through arc_halo.db.connect() (the primary)")


class ReadOnlyCursor(psycopg.Cursor[tuple[Any, ...]]):
    """A cursor that reports a write on a read-only connection as one ReadOnlyConnectionError line."""

    def execute(self, *args: Any, **kwargs: Any) -> Self:
        try:
            return super().execute(*args, **kwargs)
        except psycopg.errors.ReadOnlySqlTransaction as exc:
            raise _read_only_error(exc) from None

    def executemany(self, *args: Any, **kwargs: Any) -> None:
        try:
            return super().executemany(*args, **kwargs)
        except psycopg.errors.ReadOnlySqlTransaction as exc:
            raise _read_only_error(exc) from None

    @contextlib.contextmanager
    def copy(self, *args: Any, **kwargs: Any) -> Iterator[psycopg.Copy]:
        try:
            with super().copy(*args, **kwargs) as copy:
                yield copy
        except psycopg.errors.ReadOnlySqlTransaction as exc:
            raise _read_only_error(exc) from None


class ReplicaConnection(db.TenantConnection):
    """A `db.TenantConnection` whose transactions are all READ ONLY and whose writes fail with
    ReadOnlyConnectionError. Never autocommit: READ ONLY is set per transaction."""


def connect_replica(url: str | None = None, *, tenant: str | None = None,
                    attempts: int = db.CONNECT_ATTEMPTS) -> ReplicaConnection:
    """A read-only connection (pgvector registered; with `tenant`, every transaction acts as it) to
    `url`, else ARC_HALO_REPLICA_URL, else the library's database with every transaction READ ONLY."""
    if tenant is not None and (not isinstance(tenant, str) or not tenant):
        raise InvalidInputError(f"tenant must be a non-empty string, got {tenant!r}")
    if url is not None:
        parsed_conninfo(url, "the replica URL")
    target = url or replica_url() or targets.database_url()
    db.check_transport(target, source="the replica connection")
    try:
        conn = connecting.with_connect_retries(
            lambda: ReplicaConnection.connect(target, tenant=tenant, cursor_factory=ReadOnlyCursor,
                                              **db._connect_options(target, None)),
            attempts, 0.5, 8, permanent=connecting.PERMANENT_CONNECT_FAILURES)
    except psycopg.OperationalError as exc:
        raise describe_connection_failure(exc, target, "replica") from exc
    conn.read_only = True  # every transaction, including the catalog lookup below, begins READ ONLY
    register_vector(conn)
    conn.commit()  # end the lookup's transaction, so the caller starts from an idle connection
    return conn


@dataclass(frozen=True)
class ReplicationLag:
    """One row of analytics.replication_lag."""

    is_standby: bool
    last_replayed_at: datetime | None
    replay_lag_seconds: float | None
    replay_lag_bytes: int | None


@public_call
def lag(conn: psycopg.Connection[Any]) -> ReplicationLag:
    """How far the server `conn` is on lags behind its primary (0 on the primary itself); reads
    analytics.replication_lag, so analysts and this function agree."""
    with conn.transaction():
        row = conn.execute("select is_standby, last_replayed_at, replay_lag_seconds, replay_lag_bytes"
                           " from analytics.replication_lag").fetchone()
    if row is None:
        raise ConfigurationError("analytics.replication_lag gave no row (its definition gives one): this database's "
                                 "schema was changed by hand; build it again with `arc-halo build`")
    return ReplicationLag(bool(row[0]), row[1], None if row[2] is None else float(row[2]),
                          None if row[3] is None else int(row[3]))
