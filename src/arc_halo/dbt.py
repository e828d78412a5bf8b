"""Running dbt for the configured target: the generated profile, the dbt process, migrations and the
build. Which target and its environment (with the pre-flight checks that turn dbt's one-variable-at-a-time
and hanging-connection failures into one clear line) come from `targets`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal, overload

import psycopg

from arc_halo import config, connecting, environments, migrations
from arc_halo.conninfo import check_libpq_transport, connection_string
from arc_halo.errors import BuildFailedError, describe_connection_failure


def ensure_profile() -> Path:
    """profiles.yml is git-ignored; it is a copy of profiles.yml.example, which reads every secret from
    the environment, so the copy never holds one either."""
    root = config.project_dir()
    profile = root / "profiles.yml"
    example = root / "profiles.yml.example"
    # Refreshed when the example changes, so an older copy does not miss what the build relies on
    # (the adapter type, the fixed application_name that keeps partial parsing working).
    if not profile.exists() or profile.stat().st_mtime < example.stat().st_mtime:
        shutil.copyfile(example, profile)
    return profile


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


@overload
def run_dbt(
    args: list[str], env: dict[str, str] | None = None, check: bool = True, project: Path | None = None,
    capture: Literal[False] = False,
) -> int: ...


@overload
def run_dbt(
    args: list[str], env: dict[str, str] | None = None, check: bool = True, project: Path | None = None, *,
    capture: Literal[True],
) -> subprocess.CompletedProcess[str]: ...


def run_dbt(
    args: list[str], env: dict[str, str] | None = None, check: bool = True, project: Path | None = None,
    capture: bool = False,
) -> int | subprocess.CompletedProcess[str]:
    """Run dbt in the project directory with the target's environment; returns its exit code
    (or the completed process when capture is set, for callers that read dbt's output)."""
    ensure_profile()
    merged = {**os.environ, **(env if env is not None else environments.target_environment())}
    merged.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")  # no network at run time
    result = subprocess.run(
        [dbt_executable(), *args], cwd=project or config.project_dir(), env=merged,
        capture_output=capture, text=capture, preexec_fn=_die_with_parent,
    )
    if capture:
        return result
    if check and result.returncode != 0:
        raise BuildFailedError(f"dbt {' '.join(args)} failed (exit {result.returncode}); see the output above")
    return result.returncode


def apply_migrations(env: dict[str, str], project: Path | None = None) -> migrations.Outcome:
    """Apply the pending migrations/ of `project` to the database of a target environment."""
    conninfo = connection_string(**environments.connection_kwargs(env))
    check_libpq_transport(conninfo, "migrations")
    try:
        conn = psycopg.connect(conninfo, connect_timeout=connecting.NEON_CONNECT_TIMEOUT_SECONDS)
    except psycopg.OperationalError as exc:
        raise describe_connection_failure(exc, conninfo) from exc
    with conn:
        return migrations.migrate(conn, migrations.folder(project or config.project_dir()))


def build(args: list[str], env: dict[str, str] | None = None, project: Path | None = None) -> None:
    """Plain `dbt build` on the current target. The project's adapter (profile `type: arc_halo`) runs the
    pending migrations on-run-start and the Python models in their place in the DAG, so this only
    supplies the target's environment."""
    run_dbt(["build", *args], env=env, project=project)
