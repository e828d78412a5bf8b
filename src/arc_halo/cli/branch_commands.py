"""`arc-halo branch ...`: database branches, local copies on the embedded server or Neon branches."""

from __future__ import annotations

import argparse

from arc_halo.cli.arguments import Commands, timestamp


def branch(args: argparse.Namespace) -> None:
    from arc_halo import branches

    manager = branches.for_target()
    if args.branch_command == "create":
        created = manager.create(args.name, args.parent, args.at)
        print(f"created branch {created.name} from {created.parent} ({created.detail})")
    elif args.branch_command == "list":
        for found in manager.list():
            print(f"{found.name}\tparent={found.parent or '-'}\t{found.detail}")
    elif args.branch_command == "reset":
        print(f"reset branch {manager.reset(args.name).name} to its parent")
    elif args.branch_command == "delete":
        manager.delete(args.name)
        print(f"deleted branch {args.name}")


def register(commands: Commands) -> None:
    group = commands.add_parser(
        "branch", help="database branches: local copies on the embedded server, or Neon branches (ARC_HALO_TARGET=neon)",
    ).add_subparsers(dest="branch_command", required=True)
    create = group.add_parser("create", help="create a branch (ARC_HALO_BRANCH=<name> then points commands at it)")
    create.add_argument("name")
    create.add_argument("--from", dest="parent", default=None, help="parent branch (default: main)")
    create.add_argument("--at", default=None, type=timestamp, help="point in time, ISO 8601 with zone (Neon only)")
    group.add_parser("list", help="list branches")
    for verb, text in (("reset", "discard the branch's changes: copy its parent again"), ("delete", "delete a branch")):
        group.add_parser(verb, help=text).add_argument("name")
    for sub in group.choices.values():
        sub.set_defaults(func=branch)
