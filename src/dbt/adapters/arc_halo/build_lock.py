"""One build at a time per database: the lease, held by one dedicated session for the whole dbt invocation.

dbt opens and closes a connection around every node, so no dbt connection lives as long as a build. The
adapter therefore opens its own session at on-run-start (`acquire`) and keeps it until on-run-end
(`release`) or until the process ends. That session takes a session-level advisory lock on a key of its
invocation and only then writes the lease row, recording its backend pid and start time.

A waiting build counts the holder as alive while the backend the lease names (pid and backend_start,
which no new session can repeat) still holds that advisory lock (pg_locks). A killed build's session
ends with its process, the lock goes with it, and the lease is stale at once. A login cannot keep it
alive: connecting under the holder's application_name, or taking the same advisory key, gives a session
with another pid or start time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg

from arc_halo.conninfo import check_libpq_transport
from arc_halo.errors import BuildLockBusy
from arc_halo.rows import one_value

# Serialises the lease table's creation between two first builds (a transaction-level lock).
_CREATE_KEY = "hashtext('arc_halo.build_lock')"
# The session-level advisory key of one invocation's lock session.
_HOLDER_KEY = "hashtextextended('arc_halo.build_lock:' || {}, 0)"
POLL_SECONDS = 0.5

# Only where the lease table or its newest columns are missing: the DDL takes an ACCESS EXCLUSIVE lock,
# which would wait for any open transaction that has read the lease.
LEASE_IS_CURRENT = """
select exists (select from pg_attribute
               where attrelid = to_regclass('arc_halo_build.lease') and attname = 'holder_backend_start')
"""
CREATE_LEASE = f"""
select pg_advisory_xact_lock({_CREATE_KEY});
create schema if not exists arc_halo_build;
create table if not exists arc_halo_build.lease (
    lock_name text primary key,
    holder_invocation text not null,
    holder_application text not null,
    holder_user text not null default current_user,
    acquired_at timestamptz not null default now()
);
alter table arc_halo_build.lease add column if not exists holder_pid integer,
    add column if not exists holder_backend_start timestamptz;
comment on table arc_halo_build.lease is
    'Which dbt invocation is building this database (one row while a build runs); see macros/build_lock.';
comment on column arc_halo_build.lease.holder_pid is
    'Backend pid of the holder''s lock session, which holds a session-level advisory lock while it builds.';
comment on column arc_halo_build.lease.holder_backend_start is
    'When that backend started: with the pid, names one session that no later connection can imitate.';
"""

TAKE = """
insert into arc_halo_build.lease (lock_name, holder_invocation, holder_application, holder_pid, holder_backend_start)
select 'build', %(me)s, current_setting('application_name'), pid, backend_start
from pg_stat_activity where pid = pg_backend_pid()
on conflict (lock_name) do nothing
"""

# The holder, and whether its lock session is alive: the backend the lease names (pid and start time)
# holds the advisory lock of the holder's invocation in this database.
HOLDER = f"""
select l.holder_invocation, l.holder_user, l.acquired_at::text, l.holder_pid,
       exists (
           select from pg_locks k join pg_stat_activity a on a.pid = k.pid
           where k.locktype = 'advisory' and k.granted and k.objsubid = 1
             and k.database = (select oid from pg_database where datname = current_database())
             and k.pid = l.holder_pid and a.backend_start = l.holder_backend_start
             and k.classid::int8 = ({_HOLDER_KEY.format('l.holder_invocation')} >> 32) & 4294967295
             and k.objid::int8 = {_HOLDER_KEY.format('l.holder_invocation')} & 4294967295
       ) as alive
from arc_halo_build.lease l where l.lock_name = 'build'
"""


_sessions: dict[str, psycopg.Connection] = {}
_guard = threading.Lock()


def acquire(conninfo: str, invocation: str, wait_seconds: float, warn: Callable[[str], object] = print) -> None:
    """Hold the build lease for `invocation` on a session of its own, waiting up to `wait_seconds` for a
    live holder; a dead holder's lease is taken over at once (`warn` says so)."""
    with _guard:
        if invocation in _sessions:
            return
        check_libpq_transport(conninfo, "build lock session")
        session = psycopg.connect(conninfo, autocommit=True, application_name="dbt arc-halo build lock")
        try:
            _take(session, invocation, wait_seconds, warn)
        except BaseException:
            session.close()
            raise
        _sessions[invocation] = session


def _take(session: psycopg.Connection, invocation: str, wait_seconds: float, warn: Callable[[str], object]) -> None:
    if not one_value(session.execute(LEASE_IS_CURRENT)):
        with session.transaction():
            session.execute(CREATE_LEASE)
    session.execute(f"select pg_advisory_lock({_HOLDER_KEY.format('%s')})", (invocation,))
    deadline = time.monotonic() + wait_seconds
    told = False  # that this build waits, said once
    while True:
        if session.execute(TAKE, {"me": invocation}).rowcount:
            return
        holder = session.execute(HOLDER).fetchone()
        if holder is None:  # released between the two statements
            continue
        name, user, since, pid, alive = holder
        if name == invocation:
            return
        if alive and not told:
            warn(f"build lock: another build (dbt invocation {name}, user {user}, since {since}) is building this "
                 f"database; waiting up to {wait_seconds:g} s for it to finish (ARC_HALO_BUILD_LOCK_WAIT_SECONDS)")
            told = True
        if not alive:
            warn(f"build lock: build {name} (since {since}) has no live lock session: taking over its lease")
            session.execute("delete from arc_halo_build.lease where lock_name = 'build' and holder_invocation = %s"
                            " and holder_pid is not distinct from %s", (name, pid))
            continue
        if time.monotonic() >= deadline:
            raise BuildLockBusy(
                f"another build of this database is running (dbt invocation {name}, user {user}, since {since}); "
                f"waited {wait_seconds:g} s, nothing was changed: run again when it has finished, or raise "
                "ARC_HALO_BUILD_LOCK_WAIT_SECONDS")
        time.sleep(POLL_SECONDS)


def release(invocation: str) -> None:
    """Give the lease up and end the lock session (on-run-end, or a build that stops early)."""
    with _guard:
        session = _sessions.pop(invocation, None)
    if session is None:
        return
    try:
        session.execute("delete from arc_halo_build.lease where lock_name = 'build' and holder_invocation = %s",
                        (invocation,))
    finally:
        session.close()  # ends the session, and with it the advisory lock
