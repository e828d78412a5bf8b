"""Which database a command talks to, and how to reach it.

Targets mirror profiles.yml.example: ``local`` (embedded server, the default; ARC_HALO_BRANCH picks a
local branch), ``neon`` (NEON_* variables) and ``ci`` (the standard libpq PG* variables). The library
connects to ARC_HALO_DATABASE_URL, else NEON_DATABASE_URL, else the embedded server. What a connection
string itself says (TLS, pooler) is `conninfo`'s business; this module picks the target, builds the
environment dbt, psql and the library use for it, and owns connect retries and reachability probes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict

from arc_halo import config, embedded, retries, validation
from arc_halo.conninfo import (LIBPQ_VARIABLES, RemoteDatabase, check_libpq_transport, connection_string,
                               parse_database_url)
from arc_halo.errors import ConfigurationError, InvalidInputError, describe_connection_failure, first_line

TARGETS = ("local", "neon", "ci")
NEON_VARIABLES = ("NEON_HOST", "NEON_USER", "NEON_PASSWORD", "NEON_DATABASE")
CI_VARIABLES = ("PGHOST", "PGUSER", "PGDATABASE")
# Neon scales compute to zero; waking it takes a few seconds, so allow for that before calling a host dead.
NEON_CONNECT_TIMEOUT_SECONDS = 15
NEON_CONNECT_ATTEMPTS = 3
T = TypeVar("T")
MAX_CONNECT_ATTEMPTS = 100
MAX_RETRY_DELAY_SECONDS = 3600
BRANCH_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


def parsed_conninfo(conninfo: object, source: str) -> dict:
    """The keywords of a libpq connection string; anything else is refused naming `source`."""
    try:
        return conninfo_to_dict(validation.text(source, conninfo))
    except psycopg.ProgrammingError as exc:
        raise InvalidInputError(f"{source} is not a libpq connection string: {first_line(exc)}") from None


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


def validate_branch_name(name: str) -> str:
    if not isinstance(name, str):
        raise InvalidInputError(f"a branch name is text, got {type(name).__name__}")
    if name == "main":
        raise InvalidInputError("'main' names the main database, not a branch: choose another name")
    if not BRANCH_NAME_PATTERN.match(name):
        raise InvalidInputError(f"branch name {name!r} is invalid: use 1-40 lowercase letters, digits and '-', "
                                "starting with a letter or digit")
    return name


def branch_database(main: str, branch: str | None) -> str:
    """main itself for no branch (or "main"), else <main>__<branch>."""
    validation.bounded_text("main database name", main, 63)
    return main if branch in (None, "main") else f"{main}__{validate_branch_name(branch)}"


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


def neon_conninfo() -> dict[str, str]:
    """psycopg keyword arguments for the `neon` target's database (NEON_* variables)."""
    return {"host": os.environ["NEON_HOST"], "user": os.environ["NEON_USER"], "password": os.environ["NEON_PASSWORD"],
            "dbname": os.environ["NEON_DATABASE"], "sslmode": os.environ.get("NEON_SSLMODE", "require")}


def local_environment(server: embedded.ServerInfo, database: str = config.LOCAL_DATABASE) -> dict[str, str]:
    """Variables that point dbt's `local` target, psql and the library at the embedded server."""
    if not isinstance(server, embedded.ServerInfo):
        raise InvalidInputError(f"server must be an embedded.ServerInfo (embedded.ensure_running()), got {server!r}")
    validation.bounded_text("database name", database, 63)
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


def url_environment(url: str) -> dict[str, str]:
    """The `ci` target pointed at the database a libpq URL names (PG* variables)."""
    info = parsed_conninfo(url, "database URL")
    env = {"ARC_HALO_TARGET": "ci", "DBT_PROFILES_DIR": str(config.project_dir())}
    env.update({variable: str(info[key]) for key, variable in LIBPQ_VARIABLES.items() if info.get(key)})
    env.setdefault("PGPORT", "5432")
    check_libpq_transport(url, "database URL")
    return env


def target_environment(database: str | None = None, check_reachable: bool = True) -> dict[str, str]:
    """Environment for dbt on the current target; starts the embedded server for `local`."""
    target = current_target()
    database = database or local_database()
    env = {"ARC_HALO_TARGET": target, "DBT_PROFILES_DIR": str(config.project_dir())}
    if target == "local":
        server = embedded.ensure_running()
        embedded.ensure_database(server, database)
        return local_environment(server, database)
    if target == "neon":
        require_variables(NEON_VARIABLES, target)
        conninfo = neon_conninfo()
        check_libpq_transport(conninfo, "target 'neon' (NEON_HOST, NEON_SSLMODE)")
        if check_reachable:
            probe(conninfo, "neon")
        return env
    require_variables(CI_VARIABLES, target)
    # dbt passes host and sslmode from PGHOST and PGSSLMODE; libpq adds the rest (PGHOSTADDR...) itself.
    check_libpq_transport({"host": os.environ.get("PGHOST"), "sslmode": os.environ.get("PGSSLMODE")},
                          "target 'ci' (PG* variables)")
    return env


def connection_kwargs(env: dict[str, str]) -> dict[str, str]:
    """psycopg keyword arguments for the database a target environment points at."""
    if not isinstance(env, dict):
        raise InvalidInputError(f"env must be a dict of environment variables, got {type(env).__name__}")
    target = env.get("ARC_HALO_TARGET", "local")
    missing = [name for name in {"local": ("ARC_HALO_LOCAL_HOST", "ARC_HALO_LOCAL_DATABASE")}.get(target, ())
               if name not in env]
    if missing:
        raise ConfigurationError(f"the local target's environment lacks {', '.join(missing)}; "
                                 "build it with targets.target_environment()")
    if target == "local":
        return {"host": env["ARC_HALO_LOCAL_HOST"], "dbname": env["ARC_HALO_LOCAL_DATABASE"], "user": "postgres"}
    if target == "neon":
        return neon_conninfo()
    merged = {**os.environ, **env}
    return {key: merged[variable] for key, variable in LIBPQ_VARIABLES.items() if merged.get(variable)}


# libpq's answers that no retry changes: a missing database or role, a refused login
PERMANENT_CONNECT_FAILURES = ("does not exist", "authentication failed")


def with_connect_retries(connect: Callable[[], T], attempts: int, first_delay: float, max_delay: float,
                         permanent: tuple[str, ...] = ()) -> T:
    """`connect()`, tried up to `attempts` times with doubling sleeps between (a sleeping Neon compute
    needs a few seconds to wake); an OperationalError whose text has one of `permanent` is raised at once."""
    if not callable(connect):
        raise InvalidInputError(f"connect must be a callable, got {connect!r}")
    validation.whole_number("attempts", attempts, 1, MAX_CONNECT_ATTEMPTS)
    for name, delay in (("first_delay", first_delay), ("max_delay", max_delay)):
        if not 0 <= validation.real_number(name, delay) <= MAX_RETRY_DELAY_SECONDS:
            raise InvalidInputError(f"{name} must be between 0 and {MAX_RETRY_DELAY_SECONDS} seconds, got {delay}")
    def transient(exc: BaseException) -> bool:
        return isinstance(exc, psycopg.OperationalError) and not any(text in str(exc) for text in permanent)

    for attempt in retries.attempts(transient, tries=attempts, first_delay=first_delay, max_delay=max_delay):
        with attempt:
            return connect()
    raise AssertionError("unreachable: the last attempt returns or raises")


def probe(
    conninfo: dict[str, str], label: str,
    timeout: int = NEON_CONNECT_TIMEOUT_SECONDS, attempts: int = NEON_CONNECT_ATTEMPTS,
) -> None:
    """Connect once per attempt with a timeout, so an unreachable or sleeping host gives a clear line
    instead of a hang."""
    if not isinstance(conninfo, dict):
        raise InvalidInputError(f"conninfo must be a dict of libpq keywords, got {type(conninfo).__name__}")
    validation.whole_number("timeout", timeout, 1, MAX_RETRY_DELAY_SECONDS)
    validation.whole_number("attempts", attempts, 1, MAX_CONNECT_ATTEMPTS)
    parsed_conninfo(connection_string(**conninfo), label)
    check_libpq_transport(conninfo, label)
    try:
        with_connect_retries(lambda: psycopg.connect(connect_timeout=timeout, **conninfo).close(), attempts, 1, 5)
    except psycopg.OperationalError as exc:
        raise describe_connection_failure(exc, connection_string(**conninfo), label,
                                          f"after {attempts} attempts of {timeout}s") from None
