"""DDL on tables that applications are writing, without stalling them (the operational_table build).

Each step runs in its own short transaction on a connection in autocommit mode:
  - `lock` steps wait at most LOCK_TIMEOUT for their lock, then step back and retry after a pause, so a
    DDL statement never queues in front of the writers behind a long query (every lock request queued
    behind a waiting ACCESS EXCLUSIVE request waits too);
  - `validate` steps (VALIDATE CONSTRAINT after ADD ... NOT VALID) scan the rows under a lock writers do
    not conflict with; when rows violate the constraint, its `undo` runs and the error names it;
  - `concurrently` steps (CREATE INDEX CONCURRENTLY) run outside a transaction; a build that fails leaves
    no INVALID index behind, and one a crashed build left is rebuilt.
The connection is any DB-API connection of psycopg 2 or 3 (dbt's own, or the library's).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from arc_halo import retries
from arc_halo.errors import OnlineDDLError, first_line

LOCK_TIMEOUT = "100ms"
# How long a step keeps retrying for its lock before the build gives up, changing nothing more.
LOCK_WAIT_SECONDS = 600.0
LOCK_NOT_AVAILABLE = "55P03"


class DBAPICursor(Protocol):
    """What this module uses of a DB-API cursor (psycopg 2's or 3's)."""

    def execute(self, query: str, params: Sequence[object] = ..., /) -> object: ...
    def fetchall(self) -> Sequence[Sequence[Any]]: ...
    def close(self) -> None: ...


class DBAPIConnection(Protocol):
    """What this module uses of a DB-API connection (psycopg 2's or 3's)."""

    autocommit: bool

    def cursor(self) -> DBAPICursor: ...


def _sqlstate(exc: Exception) -> str | None:
    return getattr(exc, "pgcode", None) or getattr(exc, "sqlstate", None)


def _execute(conn: DBAPIConnection, statement: str) -> None:
    cursor = conn.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


def _with_lock_retries(conn: DBAPIConnection, statement: str, what: str, deadline: float) -> None:
    # Out of the queue while waiting: the writers behind us go on. Jitter keeps parallel builds apart.
    try:
        for attempt in retries.attempts(lambda exc: _sqlstate(exc) == LOCK_NOT_AVAILABLE, tries=None,
                                        first_delay=0.1, max_delay=2.0, jitter=0.1,
                                        within_seconds=max(0.0, deadline - time.monotonic())):
            with attempt:
                _execute(conn, f"set lock_timeout = '{LOCK_TIMEOUT}'")
                _execute(conn, statement)
    except Exception as exc:
        if _sqlstate(exc) != LOCK_NOT_AVAILABLE:
            raise
        raise OnlineDDLError(
            f"{what}: the table stayed locked by other sessions for {LOCK_WAIT_SECONDS:.0f} s (a long query?); "
            "this step was not applied, the ones before it were: build again when it is done"
        ) from None


def _drop_invalid_index(conn: DBAPIConnection, name: str) -> None:
    cursor = conn.cursor()
    try:
        cursor.execute("select format('%%I.%%I', n.nspname, c.relname) from pg_index i join pg_class c on c.oid = i.indexrelid"
                       " join pg_namespace n on n.oid = c.relnamespace"
                       " where c.relname = %s and not i.indisvalid and n.nspname = any (current_schemas(false))", (name,))
        rows = cursor.fetchall()
    finally:
        cursor.close()
    for (qualified,) in rows:
        _execute(conn, f"drop index concurrently if exists {qualified}")


def apply(conn: DBAPIConnection, steps: Sequence[Mapping[str, str]]) -> int:
    """Run the steps in order; returns how many ran. `conn` must not be in a transaction."""
    previous = getattr(conn, "autocommit", False)
    conn.autocommit = True
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    try:
        for step in steps:
            kind, statement, what = step["kind"], step["sql"], step.get("what") or step["sql"][:80]
            if kind == "lock":
                _with_lock_retries(conn, statement, what, deadline)
            elif kind == "validate":
                try:
                    _with_lock_retries(conn, statement, what, deadline)
                except OnlineDDLError:
                    raise
                except Exception as exc:
                    if step.get("undo"):
                        _with_lock_retries(conn, step["undo"], what, deadline)
                    raise OnlineDDLError(
                        f"arc-halo: cannot {what}: {first_line(exc)}. Existing rows violate it; it was not added. "
                        "Write a migration in migrations/ that fixes those rows (arc-halo db migrate), then build again."
                    ) from None
            elif kind == "concurrently":
                # Its waits (for transactions older than the index) block no writer; no lock_timeout.
                _execute(conn, "set lock_timeout = 0")
                if step.get("index"):
                    _drop_invalid_index(conn, step["index"])
                try:
                    _execute(conn, statement)
                except Exception as exc:
                    if step.get("index"):
                        _drop_invalid_index(conn, step["index"])
                    raise OnlineDDLError(f"arc-halo: cannot {what}: {first_line(exc)}") from None
            else:
                raise ValueError(f"unknown online DDL step kind {kind!r}")
        return len(steps)
    finally:
        _execute(conn, "reset lock_timeout")
        conn.autocommit = previous
