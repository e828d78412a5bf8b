"""Which database a command talks to.

Targets mirror profiles.yml.example: ``local`` (embedded server, the default; ARC_HALO_BRANCH picks a
local branch), ``neon`` (NEON_* variables) and ``ci`` (the standard libpq PG* variables). The library
connects to ARC_HALO_DATABASE_URL, else NEON_DATABASE_URL, else the embedded server. This module picks
the target and the database; the environment dbt and psql get for it is `environments`, reaching a
database (connect retries, reachability probes) is `connecting`, what a connection string says (TLS,
pooler) is `conninfo`, and branch names are `branch_names`.
"""

from __future__ import annotations

import os

from arc_halo import config, embedded
from arc_halo.branch_names import branch_database
from arc_halo.conninfo import RemoteDatabase, parse_database_url
from arc_halo.errors import ConfigurationError, InvalidInputError

TARGETS = ("local", "neon", "ci")
NEON_VARIABLES = ("NEON_HOST", "NEON_USER", "NEON_PASSWORD", "NEON_DATABASE")
CI_VARIABLES = ("PGHOST", "PGUSER", "PGDATABASE")


def current_target() -> str:
    target = os.environ.get("ARC_HALO_TARGET", "local")
    if target not in TARGETS:
        raise ConfigurationError(f"ARC_HALO_TARGET={target!r} is unknown: use one of {', '.join(TARGETS)}")
    return target


def require_variables(names: tuple[str, ...], target: str) -> None:
    """Name every missing variable at once, not one per attempt."""
    if not isinstance(names, (tuple, list)) or not all(isinstance(name, str) and "\x00" not in name for name in names):
        raise InvalidInputError(f"names must be a tuple of variable names, got {names!r}")
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise ConfigurationError(f"target '{target}' needs {', '.join(missing)} set in the environment (see README, Targets)")


def local_database() -> str:
    """The local database commands use: arc_halo, or the local branch ARC_HALO_BRANCH names."""
    try:
        return branch_database(config.LOCAL_DATABASE, os.environ.get("ARC_HALO_BRANCH"))
    except InvalidInputError as exc:
        raise ConfigurationError(f"ARC_HALO_BRANCH: {exc}") from None


def configured_database_url() -> RemoteDatabase | None:
    """A database URL from the environment, if one is set; None means use the embedded server."""
    for name in ("ARC_HALO_DATABASE_URL", "NEON_DATABASE_URL"):
        value = os.environ.get(name)
        if value:
            return parse_database_url(value, name)
    return None


def database_url() -> str:
    """The library's database: a configured URL, else the embedded server (started if need be)."""
    current_target()  # a misspelt target is refused, even where a URL decides the database
    remote = configured_database_url()
    if remote is not None:
        return remote.url
    server = embedded.ensure_running()
    database = local_database()
    embedded.ensure_database(server, database)
    return server.url(database)


