"""`arc-halo db ...`: the embedded PostgreSQL server, and migrations on the current target."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from arc_halo import dbt, embedded, environments, targets
from arc_halo.cli.arguments import Commands
from arc_halo.errors import ConfigurationError


def _local_server(database: str) -> embedded.ServerInfo:
    if targets.current_target() != "local":
        raise ConfigurationError(f"`db` commands manage the embedded server; ARC_HALO_TARGET is '{targets.current_target()}'")
    server = embedded.ensure_running()
    embedded.ensure_database(server, database)
    return server


def start(args: argparse.Namespace) -> None:
    server = _local_server(targets.local_database())
    print(f"embedded PostgreSQL {server.version} running (pid {server.pid}), data in {server.data_dir}")
    print(server.url())


def stop(args: argparse.Namespace) -> None:
    print("stopped" if embedded.stop() else "not running")


def status(args: argparse.Namespace) -> None:
    server = embedded.status()
    if server is None:
        print(f"not running (data directory {embedded.data_dir()})")
        sys.exit(1)
    print(f"running: PostgreSQL {server.version}, pid {server.pid}, data {server.data_dir}")
    print(f"url: {server.url()}")


def url(args: argparse.Namespace) -> None:
    print(_local_server(args.database).url(args.database))


def env(args: argparse.Namespace) -> None:
    """Exports for `eval "$(arc-halo db env)"`: then `dbt`, `psql` and the library all use this server."""
    server = _local_server(args.database)
    variables = environments.local_environment(server, args.database)
    variables["ARC_HALO_DATABASE_URL"] = server.url(args.database)
    variables["PATH"] = f"{embedded.bin_dir(server.version)}:{os.environ.get('PATH', '')}"
    dbt.ensure_profile()
    for name, value in variables.items():
        print(f"export {name}={shlex.quote(value)}")


def psql(args: argparse.Namespace) -> None:
    server = _local_server(args.database)
    program = str(embedded.bin_dir(server.version) / "psql")
    # `arc-halo db psql -- -c 'select 1'`: the `--` ends arc-halo's options; passed on, psql would stop
    # reading options there and run nothing.
    psql_args = args.psql_args[1:] if args.psql_args[:1] == ["--"] else args.psql_args
    os.execv(program, [program, server.url(args.database), *psql_args])


def migrate(args: argparse.Namespace) -> None:
    """Apply migrations/ to the current target's database (the one dbt builds: local, ci or neon)."""
    print(dbt.apply_migrations(environments.target_environment()).summary())


def register(commands: Commands) -> None:
    db = commands.add_parser("db", help="the embedded PostgreSQL server").add_subparsers(dest="db_command", required=True)
    db.add_parser("start", help="start the server (and create the database)").set_defaults(func=start)
    db.add_parser("stop", help="stop the server").set_defaults(func=stop)
    db.add_parser("status", help="is it running, and where").set_defaults(func=status)
    db.add_parser("migrate", help="apply pending migrations/ to the current target (local, ci or neon)").set_defaults(
        func=migrate)
    for name, func, text in (
        ("url", url, "print the libpq URL of the local database, nothing else"),
        ("env", env, "print shell exports for dbt, psql and the library"),
        ("psql", psql, "open psql on the local database"),
    ):
        sub = db.add_parser(name, help=text)
        sub.add_argument("--database", default=None, help="default: arc_halo, or the ARC_HALO_BRANCH branch")
        sub.set_defaults(func=func, passthrough=name == "psql")
