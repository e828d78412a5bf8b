"""Where the project lives and which database a command talks to.

Targets mirror profiles.yml.example: ``local`` (embedded server, the default), ``neon`` (NEON_* variables)
and ``ci`` (the standard libpq PG* variables).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from arc_halo.errors import ArcHaloError, ConfigurationError, InvalidInputError

TARGETS = ("local", "neon", "ci")
NEON_VARIABLES = ("NEON_HOST", "NEON_USER", "NEON_PASSWORD", "NEON_DATABASE")
CI_VARIABLES = ("PGHOST", "PGUSER", "PGDATABASE")
# Neon scales compute to zero; waking it takes a few seconds, so allow for that before calling a host dead.
NEON_CONNECT_TIMEOUT_SECONDS = 15
NEON_CONNECT_ATTEMPTS = 3
LOCAL_DATABASE = "arc_halo"
DEFAULT_POSTGRES_VERSION = 18
SAFE_SSLMODES = ("require", "verify-ca", "verify-full")


def project_dir() -> Path:
    """The dbt project root: ARC_HALO_PROJECT_DIR, else the nearest parent of cwd with dbt_project.yml,
    else the checkout this package was installed from (editable install)."""
    explicit = os.environ.get("ARC_HALO_PROJECT_DIR")
    if explicit:
        return Path(explicit).resolve()
    for candidate in (Path.cwd(), *Path.cwd().parents):
        if (candidate / "dbt_project.yml").is_file() and (candidate / "src" / "arc_halo").is_dir():
            return candidate
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "dbt_project.yml").is_file():
        return checkout
    raise ArcHaloError("cannot find the Arc-Halo project: run from the repository or set ARC_HALO_PROJECT_DIR")


def state_dir() -> Path:
    """Git-ignored local state (embedded data directories) inside the project."""
    return Path(os.environ.get("ARC_HALO_STATE_DIR", project_dir() / ".arc_halo")).resolve()


def local_database() -> str:
    """The local database commands use: arc_halo, or the local branch ARC_HALO_BRANCH names."""
    from arc_halo.branches import branch_database

    try:
        return branch_database(LOCAL_DATABASE, os.environ.get("ARC_HALO_BRANCH"))
    except InvalidInputError as exc:
        raise ConfigurationError(f"ARC_HALO_BRANCH: {exc}") from None


def postgres_version() -> int:
    raw = os.environ.get("ARC_HALO_PG_VERSION", str(DEFAULT_POSTGRES_VERSION))
    if raw not in ("16", "18"):
        raise ArcHaloError(f"ARC_HALO_PG_VERSION={raw} is not available embedded: use 16 or 18")
    return int(raw)


def current_target() -> str:
    target = os.environ.get("ARC_HALO_TARGET", "local")
    if target not in TARGETS:
        raise ArcHaloError(f"ARC_HALO_TARGET={target} is unknown: use one of {', '.join(TARGETS)}")
    return target


def require_variables(names: tuple[str, ...], target: str) -> None:
    """Name every missing variable at once, not one per attempt."""
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise ArcHaloError(f"target '{target}' needs {', '.join(missing)} set in the environment (see README, Targets)")


def is_local_host(host: str | None) -> bool:
    return not host or host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")


def check_transport(host: str | None, sslmode: str | None, source: str) -> None:
    """Refuse plaintext or opportunistic TLS to any host that is not this machine."""
    if is_local_host(host):
        return
    if (sslmode or "prefer") not in SAFE_SSLMODES:
        raise ArcHaloError(
            f"{source}: sslmode={sslmode or 'prefer (default)'} for remote host {host} is refused; "
            f"use sslmode=require or stronger"
        )


@dataclass(frozen=True)
class RemoteDatabase:
    """A database named by a URL (NEON_DATABASE_URL, ARC_HALO_DATABASE_URL)."""

    url: str
    host: str | None
    sslmode: str | None


def parse_database_url(url: str, source: str) -> RemoteDatabase:
    """A libpq connection string in either form: postgresql://... or key=value pairs."""
    if "://" not in url:
        from psycopg.conninfo import conninfo_to_dict

        try:
            info = conninfo_to_dict(url)
        except Exception as exc:  # psycopg.ProgrammingError: a malformed string
            raise ArcHaloError(f"{source} is not a libpq connection string: {exc}") from None
        host, sslmode = info.get("host"), info.get("sslmode")
    else:
        parsed = urlparse(url)
        if parsed.scheme not in ("postgres", "postgresql"):
            raise ArcHaloError(f"{source} must start with postgresql:// (or be key=value pairs), got '{parsed.scheme}://'")
        query = parse_qs(parsed.query)
        host = parsed.hostname or (query.get("host") or [None])[0]
        sslmode = (query.get("sslmode") or [None])[0]
    check_transport(host, sslmode, source)
    return RemoteDatabase(url=url, host=host, sslmode=sslmode)


def configured_database_url() -> RemoteDatabase | None:
    """A database URL from the environment, if one is set; None means use the embedded server."""
    for name in ("ARC_HALO_DATABASE_URL", "NEON_DATABASE_URL"):
        value = os.environ.get(name)
        if value:
            return parse_database_url(value, name)
    return None
