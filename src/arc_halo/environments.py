"""The environment dbt, psql and the library get for a target: variables pointing the project's profile
(profiles.yml.example) and libpq at its database, and the psycopg keywords for that database."""

from __future__ import annotations

import os

from arc_halo import config, embedded, validation
from arc_halo.connecting import probe
from arc_halo.conninfo import LIBPQ_VARIABLES, check_libpq_transport, parsed_conninfo
from arc_halo.errors import ConfigurationError, InvalidInputError
from arc_halo.targets import CI_VARIABLES, NEON_VARIABLES, current_target, local_database, require_variables


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
                                 "build it with environments.target_environment()")
    if target == "local":
        return {"host": env["ARC_HALO_LOCAL_HOST"], "dbname": env["ARC_HALO_LOCAL_DATABASE"], "user": "postgres"}
    if target == "neon":
        return neon_conninfo()
    merged = {**os.environ, **env}
    return {key: merged[variable] for key, variable in LIBPQ_VARIABLES.items() if merged.get(variable)}
