"""Branch names: what a branch may be called, and the local database that holds it."""

from __future__ import annotations

import re

from arc_halo import validation
from arc_halo.errors import InvalidInputError

BRANCH_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


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
    if branch is None or branch == "main":
        return main
    return f"{main}__{validate_branch_name(branch)}"
