"""argparse types and shared options of the command groups, and the connection a read-only command uses."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn, TypeAlias

if TYPE_CHECKING:
    from datetime import datetime

    from arc_halo.db import TenantConnection

REPLICA_HELP = "read from the read replica (ARC_HALO_REPLICA_URL; without it, read-only on the primary)"


class OneLineParser(argparse.ArgumentParser):
    """argparse's errors as one line (the usage text is one `--help` away), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"arc-halo: error: {message} (see `{self.prog} --help`)\n")


# What each command group's `register` adds its commands to: the subparsers of the arc-halo parser.
Commands: TypeAlias = "argparse._SubParsersAction[OneLineParser]"


def whole_number(minimum: int, too_small: str) -> Callable[[str], int]:
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


def timestamp(text: str) -> datetime:
    """An argparse type: an ISO 8601 time with a zone, e.g. 2026-11-26T12:00:00Z."""
    from datetime import datetime

    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time, e.g. 2026-11-26T12:00:00Z") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a time zone, e.g. 2026-11-26T12:00:00Z")
    return value


def file_with_suffix(*suffixes: str) -> Callable[[str], str]:
    """An argparse type: a path ending in one of `suffixes`."""
    def check(text: str) -> str:
        if not text.lower().endswith(suffixes):
            raise argparse.ArgumentTypeError(f"{text!r} must end in {' or '.join(suffixes)}")
        return text
    return check


def reader(args: argparse.Namespace) -> TenantConnection:
    """A connection for a command that only reads: the read replica with --replica, else the primary."""
    from arc_halo import db, replica

    return replica.connect_replica() if args.replica else db.connect()
