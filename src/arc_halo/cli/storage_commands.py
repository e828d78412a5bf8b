"""`arc-halo storage ...`: what external tensor storage and parallel uploads leave behind."""

from __future__ import annotations

import argparse

from arc_halo.cli.arguments import Commands


def orphans(args: argparse.Namespace) -> None:
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
        found = objectstore.find_orphans(conns, args.prefix, age)
    for item in found:
        print(f"{item.uri}\t{item.size}\t{item.last_modified.isoformat(timespec='seconds')}")
    total = sum(item.size for item in found)
    summary = (f"{len(found)} orphaned object(s), {total:,} bytes, under {args.prefix} older than "
               f"{args.older_than} ({scope})")
    if args.delete:
        objectstore.delete_objects([item.uri for item in found])
        print(f"deleted {summary}")
    else:
        print(f"{summary}{'; --delete removes them' if found else ''} (dry run)")


def uploads(args: argparse.Namespace) -> None:
    from arc_halo import db, parallel_upload

    with db.connect() as conn:
        if args.delete:
            removed = parallel_upload.remove_abandoned(conn)
            print(f"deleted {removed} pending tensor(s) of parallel uploads that ended without finishing")
            return
        count, pending = parallel_upload.find_abandoned(conn)
        print(f"{pending} pending tensor(s) of {count} parallel upload(s) that ended without finishing"
              f"{'; --delete removes them' if pending else ''} (dry run)")


def register(commands: Commands) -> None:
    storage = commands.add_parser("storage", help="external tensor storage").add_subparsers(
        dest="storage_command", required=True)
    orphan_parser = storage.add_parser("orphans", help="list (or --delete) objects under a prefix that no tensor points to")
    orphan_parser.add_argument("prefix", help="s3://bucket/prefix, gs://..., az://... or file:///directory")
    orphan_parser.add_argument("--delete", action="store_true", help="remove them (default: only list)")
    orphan_parser.add_argument("--older-than", default="24h", metavar="AGE",
                               help="only objects last written longer ago than this (30s, 15m, 1h, 2d; default 24h), "
                                    "so an upload whose metadata has not committed yet is never removed")
    orphan_parser.set_defaults(func=orphans)
    upload_parser = storage.add_parser("uploads", help="list (or --delete) what parallel uploads that died left in "
                                       "tensor_data (uploads in flight are never touched)")
    upload_parser.add_argument("--delete", action="store_true", help="remove it (default: only count)")
    upload_parser.set_defaults(func=uploads)
