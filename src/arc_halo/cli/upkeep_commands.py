"""`arc-halo upkeep | cache purge | partitions create`: the upkeep the schedule runs, and its parts by hand."""

from __future__ import annotations

import argparse
import sys

from arc_halo.cli.arguments import Commands, non_negative_int, positive_int, whole_number


def cache_purge(args: argparse.Namespace) -> None:
    from arc_halo import db, lifecycle

    with db.connect() as conn:  # lifecycle commits its own transactions
        totals = lifecycle.purge_expired_cache(conn, args.batch_size)
    print(f"purged expired rows: activation_cache={totals['activation_cache']} kv_cache={totals['kv_cache']}")


def partitions_create(args: argparse.Namespace) -> None:
    from arc_halo import db, lifecycle

    with db.connect() as conn:  # lifecycle commits its own transactions
        created = lifecycle.create_metric_partitions(conn, args.months_back, args.months_ahead)
    print("created: " + (", ".join(created) or "none needed"))


def upkeep_run(args: argparse.Namespace) -> None:
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


def upkeep_status(args: argparse.Namespace) -> None:
    from arc_halo import db, lifecycle

    with db.connect() as conn:
        for column, value in lifecycle.upkeep_status(conn).items():
            print(f"{column:24} {value}")


def register(commands: Commands) -> None:
    cache = commands.add_parser("cache", help="inference cache housekeeping").add_subparsers(dest="cache_command", required=True)
    purge = cache.add_parser("purge", help="delete expired activation_cache and kv_cache rows in batches")
    purge.add_argument("--batch-size", type=positive_int, default=5000)
    purge.set_defaults(func=cache_purge)
    partitions = commands.add_parser("partitions", help="training_metrics partitions").add_subparsers(
        dest="partitions_command", required=True)
    create = partitions.add_parser("create", help="create missing monthly partitions (never drops)")
    create.add_argument("--months-back", type=non_negative_int, default=1)
    create.add_argument("--months-ahead", type=non_negative_int, default=3)
    create.set_defaults(func=partitions_create)
    upkeep = commands.add_parser("upkeep", help="the scheduled upkeep (pg_cron or the scheduled workflow runs it)"
                                 ).add_subparsers(dest="upkeep_command", required=True)
    run = upkeep.add_parser("run", help="remove expired cache rows, create metric partitions ahead, record the run")
    run.add_argument("--triggered-by", choices=("manual", "workflow"), default="manual")
    run.add_argument("--batch-size", type=whole_number(1, "must be at least 1"), default=5000)
    run.add_argument("--max-batches", type=whole_number(1, "must be at least 1"), default=20)
    run.add_argument("--months-ahead", type=non_negative_int, default=3)
    run.set_defaults(func=upkeep_run)
    upkeep.add_parser("status", help="the last run, the last success, failures (analytics.upkeep_status)").set_defaults(
        func=upkeep_status)
