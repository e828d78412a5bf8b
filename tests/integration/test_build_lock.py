"""Issue 10 §1: two builds at once on one database. Plain `dbt build` processes (what CI jobs and
developers run), through the `ci` target's libpq variables and the shipped profiles.yml.example:
the second build says it waits and runs after the first, or stops at once with a clear message;
never a deadlock, never a lost row. Issue 18 §4: a live holder is never taken over, and a killed one's
lease always is, whoever connects under its name (liveness is the holder's own lock session)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from arc_halo import config, dbt, environments
from rows import insert_everything, row_counts

SELECTION = ["--select", "models", "v_model_architecture"]
WAITING = "build lock: another build"


def start_dbt(url: str, workdir: Path, name: str, *args: str, **variables: str) -> tuple[subprocess.Popen, Path]:
    """A plain dbt process on the database at `url`, with its own target and log folders (two dbt
    processes must not write one target/ folder) and the shipped profile; its output goes to a file."""
    profiles = workdir / "profiles"
    if not profiles.exists():
        profiles.mkdir()
        shutil.copy(config.project_dir() / "profiles.yml.example", profiles / "profiles.yml")
    env = {**os.environ, **environments.url_environment(url), "DBT_PROFILES_DIR": str(profiles),
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **variables}
    output = workdir / f"{name}.log"
    process = subprocess.Popen(
        [dbt.dbt_executable(), *args, "--target-path", str(workdir / name), "--log-path", str(workdir / name)],
        cwd=config.project_dir(), env=env, stdout=output.open("w"), stderr=subprocess.STDOUT,
    )
    return process, output


def wait_for(condition, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def lease_holders(conn: psycopg.Connection) -> list[str]:
    if conn.execute("select to_regclass('arc_halo_build.lease')").fetchone()[0] is None:
        return []
    return [row[0] for row in conn.execute("select holder_invocation from arc_halo_build.lease")]


HOLDER_APPLICATION = "dbt live-holder"
HOLDER_KEY = "hashtextextended('arc_halo.build_lock:' || %s, 0)"  # src/dbt/adapters/arc_halo/build_lock.py


def hold_lease(url: str, invocation: str) -> psycopg.Connection:
    """A session that holds the lease as a build's lock session does: its invocation's advisory lock, and
    the lease row naming its pid and start time."""
    holder = psycopg.connect(url, autocommit=True, application_name=HOLDER_APPLICATION)
    holder.execute(f"select pg_advisory_lock({HOLDER_KEY})", (invocation,))
    holder.execute("""insert into arc_halo_build.lease
                          (lock_name, holder_invocation, holder_application, holder_pid, holder_backend_start)
                      select 'build', %s, current_setting('application_name'), pid, backend_start
                      from pg_stat_activity where pid = pg_backend_pid()""", (invocation,))
    return holder


def advisory_locks_held(conn: psycopg.Connection, besides: list[int]) -> int:
    return conn.execute("select count(*) from pg_locks where locktype = 'advisory' and granted and objsubid = 1"
                        " and pid <> all(%s)", (besides,)).fetchone()[0]


@pytest.fixture
def database(test_server, built_copy) -> str:
    url = test_server.url(built_copy)
    with psycopg.connect(url) as conn:
        insert_everything(conn)
    return url


def test_builds_at_once_wait_stop_at_once_or_take_over_an_abandoned_lock(database, tmp_path) -> None:
    """One database for the four cases, so the test costs six short dbt runs."""
    with psycopg.connect(database, autocommit=True) as observer:
        before = row_counts(observer)

        # 1. Two builds at once: the second says that it waits, then runs; both succeed.
        blocker = psycopg.connect(database)  # keeps the first build inside its run: it needs `models`
        blocker.execute("lock table models in access exclusive mode")
        first, first_log = start_dbt(database, tmp_path, "first", "build", *SELECTION)
        try:
            wait_for(lambda: lease_holders(observer), "the first build to take the build lock")
            second, second_log = start_dbt(database, tmp_path, "second", "build", *SELECTION)
            wait_for(lambda: WAITING in second_log.read_text(), "the second build to say that it waits")
        finally:
            blocker.rollback()
            blocker.close()
        first_code, second_code = first.wait(timeout=600), second.wait(timeout=600)
        outputs = first_log.read_text() + second_log.read_text()
        assert "deadlock detected" not in outputs
        assert (first_code, second_code) == (0, 0), outputs[-4000:]
        assert WAITING not in first_log.read_text()
        assert lease_holders(observer) == []

        # 2. A live holder (a session holding its invocation's advisory lock, named in the lease) and no
        # patience: the build stops at once, changing nothing, and never takes the lease over.
        view_oid = "select 'v_model_architecture'::regclass::oid"
        holder = hold_lease(database, "live-holder")
        oid_held = observer.execute(view_oid).fetchone()[0]
        stopped, stopped_log = start_dbt(database, tmp_path, "stopped", "run", "--select", "v_model_architecture",
                                         ARC_HALO_BUILD_LOCK_WAIT_SECONDS="0")
        assert stopped.wait(timeout=600) != 0
        text = stopped_log.read_text()
        assert "another build of this database is running (dbt invocation live-holder" in text
        assert "nothing was changed" in text and "deadlock detected" not in text
        assert "taking over" not in text
        assert observer.execute(view_oid).fetchone()[0] == oid_held  # the view was not rebuilt
        assert lease_holders(observer) == ["live-holder"]

        # 3. The holder is killed while a build waits, after changing a relation the waiting build had
        # already listed, and an impostor connects under the holder's application_name and takes its advisory
        # key: the waiting build still takes the abandoned lease over, sees that its picture of the database
        # is stale, and stops without building on it.
        impostor = psycopg.connect(database, autocommit=True, application_name=HOLDER_APPLICATION)
        # (a bounded wait: a lock fooled by the impostor stops with "another build" instead of waiting 600 s)
        waiting, waiting_log = start_dbt(database, tmp_path, "waiting", "run", "--select", "v_model_architecture",
                                         ARC_HALO_BUILD_LOCK_WAIT_SECONDS="120")
        wait_for(lambda: WAITING in waiting_log.read_text(), "the build to say that it waits")
        others = [holder.info.backend_pid, impostor.info.backend_pid, observer.info.backend_pid]
        wait_for(lambda: advisory_locks_held(observer, others) > 0, "the waiting build's lock session")
        assert lease_holders(observer) == ["live-holder"]  # a live holder is waited for, not taken over
        observer.execute("drop view v_model_architecture")
        holder.close()
        impostor.execute(f"select pg_advisory_lock({HOLDER_KEY})", ("live-holder",))
        assert waiting.wait(timeout=600) != 0
        impostor.close()
        text = waiting_log.read_text()
        assert "taking over its lease" in text, text[-3000:]
        assert "another build changed this database while this build waited for it" in text, text[-3000:]
        assert "this build changed nothing" in text and "deadlock detected" not in text
        assert observer.execute("select to_regclass('v_model_architecture')").fetchone()[0] is None
        assert lease_holders(observer) == []

        # 4. A real build killed (SIGKILL) while it holds the lease, and an impostor connected under the
        # application_name its lease records: the next build takes the lease over and builds.
        blocker = psycopg.connect(database)  # keeps the build inside its run, holding the lease
        blocker.execute("lock table models in access exclusive mode")
        killed, _ = start_dbt(database, tmp_path, "killed", "build", *SELECTION)
        try:
            wait_for(lambda: lease_holders(observer), "the build to take the build lock")
            application = observer.execute("select holder_application from arc_halo_build.lease").fetchone()[0]
        finally:
            killed.kill()
            killed.wait()
            blocker.rollback()
            blocker.close()
        impostor = psycopg.connect(database, autocommit=True, application_name=application)
        try:
            after, after_log = start_dbt(database, tmp_path, "after", "run", "--select", "v_model_architecture",
                                         ARC_HALO_BUILD_LOCK_WAIT_SECONDS="120")
            assert after.wait(timeout=600) == 0, after_log.read_text()[-3000:]
        finally:
            impostor.close()
        assert "taking over its lease" in after_log.read_text()
        assert observer.execute("select to_regclass('v_model_architecture')").fetchone()[0] is not None
        assert lease_holders(observer) == []
        assert row_counts(observer) == before
