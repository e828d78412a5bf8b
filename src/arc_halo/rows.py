"""The one row of a statement that always returns exactly one: INSERT ... RETURNING of a single row, a
function call, an aggregate without GROUP BY, a SELECT without FROM. psycopg types `fetchone()` as
possibly None; these say, in one place, that here it cannot be."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import Row


def one_row(cursor: psycopg.Cursor[Row]) -> Row:
    row = cursor.fetchone()
    if row is None:
        raise AssertionError("unreachable: a single-row statement returned no row")
    return row


def one_value(cursor: psycopg.Cursor[Any]) -> Any:
    """The first column of `one_row`."""
    return one_row(cursor)[0]
