"""`arc-halo run | build | dbt | scratch-build | lint | schema export | sample load`: building the project,
its sample data and its checks."""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

import psycopg

from arc_halo import dbt, embedded, environments, targets
from arc_halo.cli.arguments import Commands

# The Python models and what is built on them: rebuilt once the sample data is in.
PYTHON_MODELS_AND_DOWNSTREAM = "path:models/python+"


def run_dbt(args: argparse.Namespace) -> None:
    sys.exit(dbt.run_dbt(args.dbt_args, check=False))


def build(args: argparse.Namespace) -> None:
    dbt.build(args.dbt_args)


def scratch_build(args: argparse.Namespace) -> None:
    """dbt build into a throwaway database on the embedded server, dropped afterwards."""
    server = embedded.ensure_running()
    name = f"arc_halo_scratch_{uuid.uuid4().hex[:8]}"
    embedded.ensure_database(server, name)
    try:
        dbt.build(args.dbt_args, env=environments.local_environment(server, name))
    finally:
        embedded.drop_database(server, name)


def lint(args: argparse.Namespace) -> None:
    """sqlfluff with the dbt templater needs a reachable target to compile; start it first."""
    from arc_halo import lint as lint_gate

    sys.exit(lint_gate.run(args.paths))


def schema_export(args: argparse.Namespace) -> None:
    from arc_halo import schema_export as exporter

    print(f"wrote {exporter.export()}")


def _load_sample(conn: psycopg.Connection[Any]) -> None:
    from arc_halo import sample

    model_id = sample.load(conn)
    print(f"loaded sample data ({sample.SAMPLE_MODEL} = {model_id})" if model_id else "sample data already loaded")


def sample_load(args: argparse.Namespace) -> None:
    from arc_halo import db

    with db.connect() as conn:
        _load_sample(conn)


def print_examples() -> None:
    """The specification's example statements and their results (first columns, a few rows)."""
    from arc_halo import db, sample

    with db.connect() as conn:
        results = sample.example_results(conn)
    for statement, names, rows in results:
        # ids and tenant say little at a glance; show the first telling columns
        shown = [i for i, name in enumerate(names) if not name.endswith("_id") and name != "tenant_id"][:7] or [0]
        print(f"\n{statement}")
        if len(shown) < len(names):  # rows that differ only in a hidden column would look like duplicates
            print(f"  ({len(shown)} of {len(names)} columns shown: ids and later columns left out; "
                  f"`arc-halo db psql` shows all)")
        print("  " + " | ".join(names[i] for i in shown))
        for values in rows[:4]:
            print("  " + " | ".join(str(values[i])[:36] for i in shown))
        print(f"  ({len(rows)} row{'s' if len(rows) != 1 else ''})")


def run(args: argparse.Namespace) -> None:
    """What `make run` does: `dbt build`, load the sample data, `dbt build` the Python models (and their
    tests and views) again over it; then run the specification's examples and say where it all is."""
    from arc_halo import db

    dbt.build([])
    with db.connect() as conn:
        _load_sample(conn)
    dbt.build(["--select", PYTHON_MODELS_AND_DOWNSTREAM])
    print_examples()
    print()
    if targets.current_target() == "local":
        server = embedded.ensure_running()
        print(f"Arc-Halo database ready: {server.url()}")
        print("  psql:      .venv/bin/arc-halo db psql")
        print('  dbt/psql:  eval "$(.venv/bin/arc-halo db env)"')


def register(commands: Commands) -> None:
    for name, func, text in (
        ("dbt", run_dbt, "run dbt on the current target with its environment"),
        ("build", build, "dbt build on the current target"),
        ("scratch-build", scratch_build, "dbt build into a throwaway local database"),
    ):
        commands.add_parser(name, help=text + " (extra arguments go to dbt)").set_defaults(func=func, passthrough=True)
    lint_parser = commands.add_parser(
        "lint", help="the lint gate: sqlfluff (dbt templater), squawk over migrations/, YAML, workflow, credentials")
    lint_parser.add_argument("paths", nargs="*")
    lint_parser.set_defaults(func=lint)
    schema = commands.add_parser("schema", help="the psql path").add_subparsers(dest="schema_command", required=True)
    schema.add_parser("export", help="regenerate db/schema/00_master_schema.sql from the dbt project").set_defaults(
        func=schema_export)
    sample = commands.add_parser("sample", help="the sample dataset").add_subparsers(dest="sample_command", required=True)
    sample.add_parser("load", help="load gpt-fusion-1 and friends (once; a second load changes nothing)").set_defaults(
        func=sample_load)
    commands.add_parser("run", help="build and print example queries (make run)").set_defaults(func=run)
