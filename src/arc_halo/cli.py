"""`arc-halo`: a thin command line over the library. Errors a user can fix print as one line, exit 2."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import traceback
import uuid
from typing import NoReturn

import psycopg

from arc_halo import dbt, embedded, targets
from arc_halo.errors import ArcHaloError, ConfigurationError, InvalidInputError, first_line, from_database
from arc_halo.redaction import redact

EXAMPLE_QUERIES = (
    "SELECT * FROM v_model_architecture WHERE model_name = 'gpt-fusion-1';",
    "SELECT * FROM v_training_progress WHERE status = 'running';",
    "SELECT * FROM v_reactor_status WHERE status = 'active';",
)


def _local_server(database: str) -> embedded.ServerInfo:
    if targets.current_target() != "local":
        raise ConfigurationError(f"`db` commands manage the embedded server; ARC_HALO_TARGET is '{targets.current_target()}'")
    server = embedded.ensure_running()
    embedded.ensure_database(server, database)
    return server


def cmd_db_start(args: argparse.Namespace) -> None:
    server = _local_server(targets.local_database())
    print(f"embedded PostgreSQL {server.version} running (pid {server.pid}), data in {server.data_dir}")
    print(server.url())


def cmd_db_stop(args: argparse.Namespace) -> None:
    print("stopped" if embedded.stop() else "not running")


def cmd_db_status(args: argparse.Namespace) -> None:
    server = embedded.status()
    if server is None:
        print(f"not running (data directory {embedded.data_dir()})")
        sys.exit(1)
    print(f"running: PostgreSQL {server.version}, pid {server.pid}, data {server.data_dir}")
    print(f"url: {server.url()}")


def cmd_db_url(args: argparse.Namespace) -> None:
    print(_local_server(args.database).url(args.database))


def cmd_db_env(args: argparse.Namespace) -> None:
    """Exports for `eval "$(arc-halo db env)"`: then `dbt`, `psql` and the library all use this server."""
    server = _local_server(args.database)
    variables = targets.local_environment(server, args.database)
    variables["ARC_HALO_DATABASE_URL"] = server.url(args.database)
    variables["PATH"] = f"{embedded.bin_dir(server.version)}:{os.environ.get('PATH', '')}"
    dbt.ensure_profile()
    for name, value in variables.items():
        print(f"export {name}={shlex.quote(value)}")


def cmd_db_psql(args: argparse.Namespace) -> None:
    server = _local_server(args.database)
    psql = str(embedded.bin_dir(server.version) / "psql")
    # `arc-halo db psql -- -c 'select 1'`: the `--` ends arc-halo's options; passed on, psql would stop
    # reading options there and run nothing.
    psql_args = args.psql_args[1:] if args.psql_args[:1] == ["--"] else args.psql_args
    os.execv(psql, [psql, server.url(args.database), *psql_args])


def cmd_db_migrate(args: argparse.Namespace) -> None:
    """Apply migrations/ to the current target's database (the one dbt builds: local, ci or neon)."""
    print(dbt.apply_migrations(targets.target_environment()).summary())


def cmd_dbt(args: argparse.Namespace) -> None:
    sys.exit(dbt.run_dbt(args.dbt_args, check=False))


def cmd_build(args: argparse.Namespace) -> None:
    dbt.build(args.dbt_args)


def cmd_lint(args: argparse.Namespace) -> None:
    """sqlfluff with the dbt templater needs a reachable target to compile; start it first."""
    from arc_halo import lint

    sys.exit(lint.run(args.paths))


def cmd_scratch_build(args: argparse.Namespace) -> None:
    """dbt build into a throwaway database on the embedded server, dropped afterwards."""
    server = embedded.ensure_running()
    name = f"arc_halo_scratch_{uuid.uuid4().hex[:8]}"
    embedded.ensure_database(server, name)
    try:
        dbt.build(args.dbt_args, env=targets.local_environment(server, name))
    finally:
        embedded.drop_database(server, name)


def cmd_cache_purge(args: argparse.Namespace) -> None:
    from arc_halo import db, lifecycle

    with db.connect() as conn:  # lifecycle commits its own transactions
        totals = lifecycle.purge_expired_cache(conn, args.batch_size)
    print(f"purged expired rows: activation_cache={totals['activation_cache']} kv_cache={totals['kv_cache']}")


def cmd_partitions_create(args: argparse.Namespace) -> None:
    from arc_halo import db, lifecycle

    with db.connect() as conn:  # lifecycle commits its own transactions
        created = lifecycle.create_metric_partitions(conn, args.months_back, args.months_ahead)
    print("created: " + (", ".join(created) or "none needed"))


def cmd_schema_export(args: argparse.Namespace) -> None:
    from arc_halo import schema_export

    print(f"wrote {schema_export.export()}")


def _load_sample(conn) -> None:
    from arc_halo import sample

    model_id = sample.load(conn)
    print(f"loaded sample data ({sample.SAMPLE_MODEL} = {model_id})" if model_id else "sample data already loaded")


def cmd_sample_load(args: argparse.Namespace) -> None:
    from arc_halo import db

    with db.connect() as conn:
        _load_sample(conn)


def _reader(args: argparse.Namespace):
    """A connection for a command that only reads: the read replica with --replica, else the primary."""
    from arc_halo import db, replica

    return replica.connect_replica() if args.replica else db.connect()


def cmd_upkeep_run(args: argparse.Namespace) -> None:
    from arc_halo import db, lifecycle

    with db.connect() as conn:
        run = lifecycle.run_upkeep(conn, args.triggered_by, args.batch_size, args.max_batches, args.months_ahead)
    if run.status == "failed":
        print(f"arc-halo: upkeep run {run.upkeep_run_id} failed (recorded in upkeep_runs): {run.error}", file=sys.stderr)
        sys.exit(1)
    backlog = "; expired rows remain for the next run" if run.expired_rows_remaining else ""
    print(f"upkeep run {run.upkeep_run_id}: removed {run.kv_cache_rows_removed} kv_cache and "
          f"{run.activation_cache_rows_removed} activation_cache rows; partitions created: "
          f"{', '.join(run.partitions_created) or 'none needed'}{backlog}")


def cmd_upkeep_status(args: argparse.Namespace) -> None:
    from arc_halo import db

    with db.connect() as conn:
        cursor = conn.execute("select * from analytics.upkeep_status")
        for column, value in zip([c.name for c in cursor.description], cursor.fetchone(), strict=True):
            print(f"{column:24} {value}")


def cmd_plot_training(args: argparse.Namespace) -> None:
    from pathlib import Path

    from arc_halo import plots

    with _reader(args) as conn:
        print(f"wrote {plots.training_curves(conn, args.session, Path(args.output))}")


def cmd_model_import(args: argparse.Namespace) -> None:
    from arc_halo import db, hf

    store = None
    if args.external or args.external_dir:
        from arc_halo import objectstore

        store = objectstore.open_store(args.external or args.external_dir)
    with db.connect() as conn:
        result = hf.import_model(conn, args.directory, args.name, args.version, progress=True, store=store,
                                 workers=args.workers)
    if result.created:
        verb = "imported"
    else:
        # Asked for something the stored copy does not have: say so as an error (nothing was written).
        unmet = [f"--name {args.name!r} was not used"] if args.name and args.name != result.model_name else []
        if store is not None:
            unmet.append(f"{'--external' if args.external else '--external-dir'} was not applied (its tensors stay where "
                         "they are stored)")
        if unmet:
            raise InvalidInputError(f"this model is already registered as {result.model_name!r} ({result.model_id}, same "
                                    f"content), nothing written: {'; '.join(unmet)}; to store it again differently, "
                                    "delete the stored model first")
        verb = f"already registered as {result.model_name!r} (same content), nothing written:"
    print(f"{verb} {result.model_id}: {result.tensor_count} tensors, {result.parameter_count:,} parameters, "
          f"{result.embedding_count:,} embeddings", flush=True)
    if result.created and not args.no_index:
        # The model is visible and exactly searchable now; its approximate index is built after the commit.
        _build_indexes([result.model_id], rebuild=False)


def _build_indexes(model_ids, rebuild: bool) -> None:
    import time

    from arc_halo import db, embeddings

    with db.connect() as conn:
        for model_id in model_ids:
            started = time.perf_counter()
            try:
                status = embeddings.build_index(conn, model_id, rebuild=rebuild)
            except psycopg.errors.InsufficientPrivilege:
                print(f"index of {model_id}: not built (needs the schema owner: run `arc-halo model index` as it); "
                      "search is exact until then")
                continue
            print(f"index of {model_id}: {_index_summary(status)} ({time.perf_counter() - started:.1f} s)")


def _index_summary(status) -> str:
    if status.state == "exact":
        return "none needed, searched exactly" + (f" ({status.rows:,} vectors)" if status.partition else "")
    if status.state == "ready":
        return f"ready ({status.plan.method}, {status.rows:,} vectors)"
    return status.state


def cmd_model_index(args: argparse.Namespace) -> None:
    from arc_halo import db, embeddings

    with db.connect() as conn:
        if args.all:
            ids = [row[0] for row in conn.execute("select model_id from models order by model_name, version")]
            ids = [model_id for model_id in ids if args.rebuild or embeddings.index_status(conn, model_id).state
                   in ("missing", "invalid")]
        else:
            ids = embeddings.model_ids(conn, args.model)
    _build_indexes(ids, rebuild=args.rebuild)


def cmd_model_export(args: argparse.Namespace) -> None:
    from arc_halo import hf

    with _reader(args) as conn:
        print(f"wrote {hf.export_model(conn, args.model, args.output, progress=True)}")


def cmd_storage_orphans(args: argparse.Namespace) -> None:
    from contextlib import ExitStack

    from arc_halo import branches, db, objectstore
    from arc_halo.errors import ConfigurationError

    age = objectstore.parse_age(args.older_than)
    objectstore.check_prefix(args.prefix)
    try:  # branches share objects with their parent: an object is an orphan only if no branch points to it
        urls: list[str | None] = list(branches.referencing_databases())
        scope = f"checked in {len(urls)} database(s): this one and every branch sharing its objects"
    except ConfigurationError as exc:
        if args.delete:
            raise ConfigurationError(f"storage orphans --delete refused, nothing was deleted: {exc}") from None
        urls, scope = [None], "checked in this database only"
    with ExitStack() as stack:
        conns = [stack.enter_context(db.connect(url)) for url in urls]
        orphans = objectstore.find_orphans(conns, args.prefix, age)
    for item in orphans:
        print(f"{item.uri}\t{item.size}\t{item.last_modified.isoformat(timespec='seconds')}")
    total = sum(item.size for item in orphans)
    summary = (f"{len(orphans)} orphaned object(s), {total:,} bytes, under {args.prefix} older than "
               f"{args.older_than} ({scope})")
    if args.delete:
        objectstore.delete_objects([item.uri for item in orphans])
        print(f"deleted {summary}")
    else:
        print(f"{summary}{'; --delete removes them' if orphans else ''} (dry run)")


def cmd_storage_uploads(args: argparse.Namespace) -> None:
    from arc_halo import db, parallel_upload

    with db.connect() as conn:
        if args.delete:
            removed = parallel_upload.remove_abandoned(conn)
            print(f"deleted {removed} pending tensor(s) of parallel uploads that ended without finishing")
            return
        uploads, pending = parallel_upload.find_abandoned(conn)
        print(f"{pending} pending tensor(s) of {uploads} parallel upload(s) that ended without finishing"
              f"{'; --delete removes them' if pending else ''} (dry run)")


def cmd_model_delete(args: argparse.Namespace) -> None:
    from arc_halo import db, model_delete

    with db.connect(tenant=args.tenant) as conn:
        deleted = model_delete.delete_model(conn, args.model)
    external = (f" ({deleted.external_tensors_deleted} kept their objects: `arc-halo storage orphans` lists them)"
                if deleted.external_tensors_deleted else "")
    print(f"deleted model {deleted.model_name!r} ({deleted.model_id}) and everything that was its; "
          f"{deleted.tensors_deleted} tensors no other model uses{external}")


def cmd_model_list(args: argparse.Namespace) -> None:
    from arc_halo import db, embeddings

    with db.connect() as conn:
        rows = conn.execute(
            """select model_id, model_name, version, architecture, num_layers, num_attention_heads, status
               from models order by model_name, version""").fetchall()
        for row in rows:
            # The last column: whether search uses an index for the model yet (exact, ready, building...).
            print("\t".join(str(value) for value in (*row, embeddings.index_status(conn, row[0]).state)))


def _print_examples() -> None:
    """Run the specification's example statements and print their results (first columns, few rows)."""
    from arc_halo import db, sample, tenancy

    with db.connect() as conn:
        row = conn.execute(f"select model_id from models where model_name = %s and tenant_id = {tenancy.CURRENT_TENANT}",
                           (sample.SAMPLE_MODEL,)).fetchone()
        model_id = str(row[0]) if row else "00000000-0000-0000-0000-000000000000"
        statements = [*EXAMPLE_QUERIES, f"SELECT * FROM calculate_model_parameters('{model_id}');",
                      f"SELECT get_latest_checkpoint('{model_id}');"]
        for statement in statements:
            cursor = conn.execute(statement)
            names = [column.name for column in cursor.description]
            # ids and tenant say little at a glance; show the first telling columns
            shown = [i for i, name in enumerate(names) if not name.endswith("_id") and name != "tenant_id"][:7] or [0]
            rows = cursor.fetchall()
            print(f"\n{statement}")
            if len(shown) < len(names):  # rows that differ only in a hidden column would look like duplicates
                print(f"  ({len(shown)} of {len(names)} columns shown: ids and later columns left out; "
                      f"`arc-halo db psql` shows all)")
            print("  " + " | ".join(names[i] for i in shown))
            for values in rows[:4]:
                print("  " + " | ".join(str(values[i])[:36] for i in shown))
            print(f"  ({len(rows)} row{'s' if len(rows) != 1 else ''})")


# The Python models and what is built on them: rebuilt once the sample data is in.
PYTHON_MODELS_AND_DOWNSTREAM = "path:models/python+"


def cmd_run(args: argparse.Namespace) -> None:
    """What `make run` does: `dbt build`, load the sample data, `dbt build` the Python models (and their
    tests and views) again over it; then run the seed's examples and say where it all is."""
    from arc_halo import db

    dbt.build([])
    with db.connect() as conn:
        _load_sample(conn)
    dbt.build(["--select", PYTHON_MODELS_AND_DOWNSTREAM])
    _print_examples()
    print()
    if targets.current_target() == "local":
        server = embedded.ensure_running()
        print(f"Arc-Halo database ready: {server.url()}")
        print("  psql:      .venv/bin/arc-halo db psql")
        print('  dbt/psql:  eval "$(.venv/bin/arc-halo db env)"')


class OneLineParser(argparse.ArgumentParser):
    """argparse's errors as one line (the usage text is one `--help` away), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"arc-halo: error: {message} (see `{self.prog} --help`)\n")


def whole_number(minimum: int, too_small: str):
    """An argparse type for counts and sizes: a whole number of at least `minimum`; `too_small` completes
    "<value> ..." when it is not."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} {too_small}")
        return value
    return parse


positive_int = whole_number(1, "must be at least 1")
non_negative_int = whole_number(0, "must be 0 or more")


def timestamp(text: str):
    """An argparse type: an ISO 8601 time with a zone, e.g. 2026-11-26T12:00:00Z."""
    from datetime import datetime

    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time, e.g. 2026-11-26T12:00:00Z") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a time zone, e.g. 2026-11-26T12:00:00Z")
    return value


def file_with_suffix(*suffixes: str):
    """An argparse type: a path ending in one of `suffixes`."""
    def check(text: str) -> str:
        if not text.lower().endswith(suffixes):
            raise argparse.ArgumentTypeError(f"{text!r} must end in {' or '.join(suffixes)}")
        return text
    return check


REPLICA_HELP = "read from the read replica (ARC_HALO_REPLICA_URL; without it, read-only on the primary)"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="arc-halo", description=__doc__)
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (also ARC_HALO_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="the embedded PostgreSQL server").add_subparsers(dest="db_command", required=True)
    db.add_parser("start", help="start the server (and create the database)").set_defaults(func=cmd_db_start)
    db.add_parser("stop", help="stop the server").set_defaults(func=cmd_db_stop)
    db.add_parser("status", help="is it running, and where").set_defaults(func=cmd_db_status)
    db.add_parser("migrate", help="apply pending migrations/ to the current target (local, ci or neon)").set_defaults(
        func=cmd_db_migrate)
    for name, func, text in (
        ("url", cmd_db_url, "print the libpq URL of the local database, nothing else"),
        ("env", cmd_db_env, "print shell exports for dbt, psql and the library"),
        ("psql", cmd_db_psql, "open psql on the local database"),
    ):
        sub = db.add_parser(name, help=text)
        sub.add_argument("--database", default=None, help="default: arc_halo, or the ARC_HALO_BRANCH branch")
        sub.set_defaults(func=func, passthrough=name == "psql")

    for name, func, text in (
        ("dbt", cmd_dbt, "run dbt on the current target with its environment"),
        ("build", cmd_build, "dbt build on the current target"),
        ("scratch-build", cmd_scratch_build, "dbt build into a throwaway local database"),
    ):
        commands.add_parser(name, help=text + " (extra arguments go to dbt)").set_defaults(func=func, passthrough=True)

    lint_parser = commands.add_parser(
        "lint", help="the lint gate: sqlfluff (dbt templater), squawk over migrations/, YAML, workflow, credentials")
    lint_parser.add_argument("paths", nargs="*")
    lint_parser.set_defaults(func=cmd_lint)
    cache = commands.add_parser("cache", help="inference cache housekeeping").add_subparsers(dest="cache_command", required=True)
    purge = cache.add_parser("purge", help="delete expired activation_cache and kv_cache rows in batches")
    purge.add_argument("--batch-size", type=positive_int, default=5000)
    purge.set_defaults(func=cmd_cache_purge)
    partitions = commands.add_parser("partitions", help="training_metrics partitions").add_subparsers(
        dest="partitions_command", required=True)
    create = partitions.add_parser("create", help="create missing monthly partitions (never drops)")
    create.add_argument("--months-back", type=non_negative_int, default=1)
    create.add_argument("--months-ahead", type=non_negative_int, default=3)
    create.set_defaults(func=cmd_partitions_create)
    upkeep = commands.add_parser("upkeep", help="the scheduled upkeep (pg_cron or the scheduled workflow runs it)"
                                 ).add_subparsers(dest="upkeep_command", required=True)
    upkeep_run = upkeep.add_parser("run", help="remove expired cache rows, create metric partitions ahead, record the run")
    upkeep_run.add_argument("--triggered-by", choices=("manual", "workflow"), default="manual")
    upkeep_run.add_argument("--batch-size", type=whole_number(1, "must be at least 1"), default=5000)
    upkeep_run.add_argument("--max-batches", type=whole_number(1, "must be at least 1"), default=20)
    upkeep_run.add_argument("--months-ahead", type=non_negative_int, default=3)
    upkeep_run.set_defaults(func=cmd_upkeep_run)
    upkeep.add_parser("status", help="the last run, the last success, failures (analytics.upkeep_status)").set_defaults(
        func=cmd_upkeep_status)
    schema = commands.add_parser("schema", help="the psql path").add_subparsers(dest="schema_command", required=True)
    schema.add_parser("export", help="regenerate db/schema/00_master_schema.sql from the dbt project").set_defaults(
        func=cmd_schema_export)
    sample = commands.add_parser("sample", help="the sample dataset").add_subparsers(dest="sample_command", required=True)
    sample.add_parser("load", help="load gpt-fusion-1 and friends (once; a second load changes nothing)").set_defaults(
        func=cmd_sample_load)
    plot = commands.add_parser("plot", help="pictures").add_subparsers(dest="plot_command", required=True)
    curves = plot.add_parser("training", help="loss and learning rate against step for a session, to PNG/SVG/PDF")
    curves.add_argument("session", help="session name or id")
    curves.add_argument("--output", "-o", default="training_curves.png",
                        type=file_with_suffix(".png", ".svg", ".pdf"))
    curves.add_argument("--replica", action="store_true", help=REPLICA_HELP)
    curves.set_defaults(func=cmd_plot_training)
    branch = commands.add_parser(
        "branch", help="database branches: local copies on the embedded server, or Neon branches (ARC_HALO_TARGET=neon)",
    ).add_subparsers(dest="branch_command", required=True)
    create_branch = branch.add_parser("create", help="create a branch (ARC_HALO_BRANCH=<name> then points commands at it)")
    create_branch.add_argument("name")
    create_branch.add_argument("--from", dest="parent", default=None, help="parent branch (default: main)")
    create_branch.add_argument("--at", default=None, type=timestamp, help="point in time, ISO 8601 with zone (Neon only)")
    branch.add_parser("list", help="list branches")
    for verb, text in (("reset", "discard the branch's changes: copy its parent again"), ("delete", "delete a branch")):
        branch.add_parser(verb, help=text).add_argument("name")
    for sub in branch.choices.values():
        sub.set_defaults(func=cmd_branch)
    model = commands.add_parser("model", help="Hugging Face models in and out").add_subparsers(
        dest="model_command", required=True)
    model_import = model.add_parser("import", help="register a model directory (config.json + safetensors)")
    model_import.add_argument("directory")
    model_import.add_argument("--name", help="model_name (default: the directory's name)")
    model_import.add_argument("--version", default="1.0.0")
    model_import.add_argument("--no-index", action="store_true",
                              help="do not build the search index after the import (arc-halo model index does later)")
    model_import.add_argument("--workers", type=non_negative_int, default=2, metavar="N",
                              help="connections writing tensor chunks in parallel (default 2; 0: the one connection)")
    external = model_import.add_mutually_exclusive_group()
    external.add_argument("--external", metavar="URI", help="keep tensor bytes at s3://bucket/prefix, gs://, az:// "
                          "or file:///directory, not in the database (credentials from AWS_*/GOOGLE_*/AZURE_* variables)")
    external.add_argument("--external-dir", metavar="DIR", help="the same as --external file://DIR")
    model_import.set_defaults(func=cmd_model_import)
    model_export = model.add_parser("export", help="write a stored model's tensors to a safetensors file")
    model_export.add_argument("model", help="model id or name")
    model_export.add_argument("output", help="path of the .safetensors file to write",
                              type=file_with_suffix(".safetensors"))
    model_export.add_argument("--replica", action="store_true", help=REPLICA_HELP)
    model_export.set_defaults(func=cmd_model_export)
    model_delete = model.add_parser("delete", help="delete a model and everything that is its, in one transaction")
    model_delete.add_argument("model", help="model id or name")
    model_delete.add_argument("--tenant", default=None, help="act as this tenant (row-level security)")
    model_delete.set_defaults(func=cmd_model_delete)
    model.add_parser("list", help="registered models, the last column their search index's state").set_defaults(
        func=cmd_model_list)
    model_index = model.add_parser("index", help="build a model's approximate search index if it has none that is "
                                   "valid (imports do it after their commit)")
    which = model_index.add_mutually_exclusive_group(required=True)
    which.add_argument("model", nargs="?", help="model id or name")
    which.add_argument("--all", action="store_true", help="every model whose index is missing or invalid")
    model_index.add_argument("--rebuild", action="store_true", help="drop the index and build it again")
    model_index.set_defaults(func=cmd_model_index)
    storage = commands.add_parser("storage", help="external tensor storage").add_subparsers(
        dest="storage_command", required=True)
    orphans = storage.add_parser("orphans", help="list (or --delete) objects under a prefix that no tensor points to")
    orphans.add_argument("prefix", help="s3://bucket/prefix, gs://..., az://... or file:///directory")
    orphans.add_argument("--delete", action="store_true", help="remove them (default: only list)")
    orphans.add_argument("--older-than", default="24h", metavar="AGE",
                         help="only objects last written longer ago than this (30s, 15m, 1h, 2d; default 24h), so an "
                              "upload whose metadata has not committed yet is never removed")
    orphans.set_defaults(func=cmd_storage_orphans)
    uploads = storage.add_parser("uploads", help="list (or --delete) what parallel uploads that died left in tensor_data "
                                 "(uploads in flight are never touched)")
    uploads.add_argument("--delete", action="store_true", help="remove it (default: only count)")
    uploads.set_defaults(func=cmd_storage_uploads)
    commands.add_parser("run", help="build and print example queries (make run)").set_defaults(func=cmd_run)
    return parser


def cmd_branch(args: argparse.Namespace) -> None:
    from arc_halo import branches

    manager = branches.for_target()
    if args.branch_command == "create":
        created = manager.create(args.name, args.parent, args.at)
        print(f"created branch {created.name} from {created.parent} ({created.detail})")
    elif args.branch_command == "list":
        for branch in manager.list():
            print(f"{branch.name}\tparent={branch.parent or '-'}\t{branch.detail}")
    elif args.branch_command == "reset":
        print(f"reset branch {manager.reset(args.name).name} to its parent")
    elif args.branch_command == "delete":
        manager.delete(args.name)
        print(f"deleted branch {args.name}")


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


if __name__ == "__main__":
    main()
