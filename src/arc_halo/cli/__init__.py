"""`arc-halo`: a thin command line over the library, one module per command group (db, build, model,
storage, upkeep, branch), each handler a call into the library with no SQL of its own. Errors a user can
fix print as one line, exit 2."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

import psycopg

from arc_halo import targets
from arc_halo.cli import (arguments, branch_commands, build_commands, db_commands, model_commands,
                              storage_commands, upkeep_commands)
from arc_halo.errors import ArcHaloError, first_line, from_database
from arc_halo.redaction import redact

__all__ = ["build_parser", "main"]

GROUPS = (db_commands, build_commands, upkeep_commands, model_commands, storage_commands, branch_commands)


def build_parser() -> argparse.ArgumentParser:
    parser = arguments.OneLineParser(prog="arc-halo", description=__doc__)
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (also ARC_HALO_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(commands)
    return parser


def _user_error(exc: BaseException) -> str | None:
    """One line for an error a user can fix, or None for a fault in arc-halo itself."""
    if isinstance(exc, ArcHaloError):
        return first_line(exc)
    if isinstance(exc, psycopg.Error) and (translated := from_database(exc)) is not None:
        return first_line(translated)
    if isinstance(exc, psycopg.OperationalError):
        return f"the database connection failed: {first_line(exc)}; check that the server runs, then retry"
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror.lower()}{where}"
    return None


def _debugging(args: argparse.Namespace | None = None) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get("ARC_HALO_DEBUG", "") not in ("", "0", "false", "no")


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.dbt_args = args.psql_args = extra
    try:
        if getattr(args, "database", "unset") is None:
            args.database = targets.local_database()
        args.func(args)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if _debugging(args):  # the traceback, with every credential it quotes hidden
            print(redact("".join(traceback.format_exception(exc))), end="", file=sys.stderr)
            sys.exit(1)
        line = _user_error(exc)
        if line is None:  # a fault in arc-halo, not in the input: still one line, but say how to see more
            print(redact(f"arc-halo: internal error: {type(exc).__name__}: {first_line(exc)} "
                         "(rerun with --debug or ARC_HALO_DEBUG=1 for the traceback, and report it)"), file=sys.stderr)
            sys.exit(1)
        print(redact(f"arc-halo: error: {line}"), file=sys.stderr)
        sys.exit(2)
