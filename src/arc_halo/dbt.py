"""Running dbt for the configured target: the generated profile, its environment, and pre-flight checks
that turn dbt's one-variable-at-a-time and hanging-connection failures into one clear line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from arc_halo import config, embedded
from arc_halo.errors import ArcHaloError, describe_connection_failure


def ensure_profile() -> Path:
    """profiles.yml is git-ignored; it is a copy of profiles.yml.example, which reads every secret from
    the environment, so the copy never holds one either."""
    root = config.project_dir()
    profile = root / "profiles.yml"
    example = root / "profiles.yml.example"
    # Refreshed when the example changes, so an older copy does not miss what the build relies on
    # (the connections' application_name that the build lock reads, the adapter type).
    if not profile.exists() or profile.stat().st_mtime < example.stat().st_mtime:
        shutil.copyfile(example, profile)
    return profile


def local_environment(server: embedded.ServerInfo, database: str = config.LOCAL_DATABASE) -> dict[str, str]:
    """Variables that point dbt's `local` target, psql and the library at the embedded server."""
    return {
        "ARC_HALO_TARGET": "local",
        "ARC_HALO_LOCAL_HOST": str(server.socket_dir),
        "ARC_HALO_LOCAL_DATABASE": database,
        "DBT_PROFILES_DIR": str(config.project_dir()),
        "PGHOST": str(server.socket_dir),
        "PGPORT": "5432",
        "PGUSER": "postgres",
        "PGDATABASE": database,
    }


def probe(
    conninfo: dict[str, str], label: str,
    timeout: int = config.NEON_CONNECT_TIMEOUT_SECONDS, attempts: int = config.NEON_CONNECT_ATTEMPTS,
) -> None:
    """Connect once per attempt with a timeout, so an unreachable or sleeping host gives a clear line
    instead of a hang."""
    last_error: Exception | None = None
    for attempt in range(attempts):
        try:
            with psycopg.connect(connect_timeout=timeout, **conninfo):
                return
        except psycopg.OperationalError as exc:
            last_error = exc
            if attempt < attempts - 1:
                time.sleep(min(2**attempt, 5))
    from psycopg.conninfo import make_conninfo

    raise describe_connection_failure(last_error, make_conninfo(**conninfo), label, f"after {attempts} attempts of {timeout}s")


# libpq connection keywords and the environment variables the `ci` target reads them from.
LIBPQ_VARIABLES = {"host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "user": "PGUSER",
                   "password": "PGPASSWORD", "dbname": "PGDATABASE", "sslmode": "PGSSLMODE"}


def neon_conninfo() -> dict[str, str]:
    """psycopg keyword arguments for the `neon` target's database (NEON_* variables)."""
    return {"host": os.environ["NEON_HOST"], "user": os.environ["NEON_USER"], "password": os.environ["NEON_PASSWORD"],
            "dbname": os.environ["NEON_DATABASE"], "sslmode": os.environ.get("NEON_SSLMODE", "require")}


def url_environment(url: str) -> dict[str, str]:
    """The `ci` target pointed at the database a libpq URL names (PG* variables)."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    env = {"ARC_HALO_TARGET": "ci", "DBT_PROFILES_DIR": str(config.project_dir())}
    env.update({variable: str(info[key]) for key, variable in LIBPQ_VARIABLES.items() if info.get(key)})
    env.setdefault("PGPORT", "5432")
    config.check_libpq_transport(url, "database URL")
    return env


def target_environment(database: str | None = None, check_reachable: bool = True) -> dict[str, str]:
    """Environment for dbt on the current target; starts the embedded server for `local`."""
    target = config.current_target()
    database = database or config.local_database()
    env = {"ARC_HALO_TARGET": target, "DBT_PROFILES_DIR": str(config.project_dir())}
    if target == "local":
        server = embedded.ensure_running()
        embedded.ensure_database(server, database)
        return local_environment(server, database)
    if target == "neon":
        config.require_variables(config.NEON_VARIABLES, target)
        conninfo = neon_conninfo()
        config.check_libpq_transport(conninfo, "target 'neon' (NEON_HOST, NEON_SSLMODE)")
        if check_reachable:
            probe(conninfo, "neon")
        return env
    config.require_variables(config.CI_VARIABLES, target)
    # dbt passes host and sslmode from PGHOST and PGSSLMODE; libpq adds the rest (PGHOSTADDR...) itself.
    config.check_libpq_transport({"host": os.environ.get("PGHOST"), "sslmode": os.environ.get("PGSSLMODE")},
                                 "target 'ci' (PG* variables)")
    return env


def _die_with_parent() -> None:
    """In the dbt child: get SIGTERM when arc-halo dies, so a killed command never leaves a build
    running that races the next one (Linux prctl; a no-op elsewhere)."""
    try:
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def dbt_executable() -> str:
    """dbt from the same environment as this interpreter, so `make` and a bare `arc-halo` agree."""
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def run_dbt(
    args: list[str], env: dict[str, str] | None = None, check: bool = True, project: Path | None = None,
    capture: bool = False,
) -> int | subprocess.CompletedProcess:
    """Run dbt in the project directory with the target's environment; returns its exit code
    (or the completed process when capture is set, for callers that read dbt's output)."""
    ensure_profile()
    merged = {**os.environ, **(env if env is not None else target_environment())}
    merged.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")  # no network at run time
    result = subprocess.run(
        [dbt_executable(), *args], cwd=project or config.project_dir(), env=merged,
        capture_output=capture, text=capture, preexec_fn=_die_with_parent,
    )
    if capture:
        return result
    if check and result.returncode != 0:
        raise ArcHaloError(f"dbt {' '.join(args)} failed (exit {result.returncode}); see the output above")
    return result.returncode


def connection_kwargs(env: dict[str, str]) -> dict[str, str]:
    """psycopg keyword arguments for the database a dbt target environment points at."""
    target = env.get("ARC_HALO_TARGET", "local")
    if target == "local":
        return {"host": env["ARC_HALO_LOCAL_HOST"], "dbname": env["ARC_HALO_LOCAL_DATABASE"], "user": "postgres"}
    if target == "neon":
        return neon_conninfo()
    merged = {**os.environ, **env}
    return {key: merged[variable] for key, variable in LIBPQ_VARIABLES.items() if merged.get(variable)}


def apply_migrations(env: dict[str, str], project: Path | None = None):
    """Apply the pending migrations/ of `project` to the database of a target environment."""
    from psycopg.conninfo import make_conninfo

    from arc_halo import migrations

    conninfo = make_conninfo(**connection_kwargs(env))
    try:
        conn = psycopg.connect(conninfo, connect_timeout=config.NEON_CONNECT_TIMEOUT_SECONDS)
    except psycopg.OperationalError as exc:
        raise describe_connection_failure(exc, conninfo) from exc
    with conn:
        return migrations.migrate(conn, migrations.folder(project or config.project_dir()))


def build(args: list[str], env: dict[str, str] | None = None, project: Path | None = None) -> None:
    """Plain `dbt build` on the current target. The project's adapter (profile `type: arc_halo`) runs the
    pending migrations on-run-start and the Python models in their place in the DAG, so this only
    supplies the target's environment."""
    run_dbt(["build", *args], env=env, project=project)
