"""Bulk writes: binary COPY that row-level security accepts. Every library write path of many rows uses it.

PostgreSQL refuses `COPY FROM` into a table whose policies apply to the current role ("COPY FROM not
supported with row-level security"). Then the rows are copied into a temporary staging table (no
policies, no WAL) and moved with one `INSERT ... SELECT`, which the policies check like any insert.
Wide rows (a megabyte and more, such as tensor chunks) would be written twice that way; they go in as
one pipelined INSERT per row with binary parameters instead. A role the policies do not apply to (the
owner, or RLS off) copies straight into the table.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import psycopg
from psycopg import sql

from arc_halo.errors import InvalidInputError, public_call
from arc_halo.rows import one_value


class RowWriter(Protocol):
    def write_row(self, row: Sequence[Any]) -> None:
        """Send (or queue) one row, its values in the order of the columns."""


class _QueuedRows:
    """Rows kept (by reference, not copied) until the block ends, then inserted in one pipeline."""

    def __init__(self) -> None:
        self.rows: list[Sequence[Any]] = []

    def write_row(self, row: Sequence[Any]) -> None:
        self.rows.append(row)


@public_call
def row_security_applies(conn: psycopg.Connection, table: str) -> bool:
    """Whether the policies of `table` apply to this connection's current role right now."""
    applies: bool = one_value(conn.execute("select row_security_active(%s::regclass)", (table,)))
    return applies


@contextlib.contextmanager
@public_call
def copy_into(conn: psycopg.Connection, table: str, columns: Sequence[str], types: Sequence[str] | None = None,
              wide_rows: bool = False) -> Iterator[RowWriter]:
    """A writer of rows (`write_row`) into `table (columns)`, in the caller's transaction or its own: a
    binary `COPY ... FROM STDIN` when the policies do not apply, else see the module docstring.
    `types` are the binary wire types of the columns, when they differ from what psycopg would guess
    from the Python values (see psycopg's `Copy.set_types`); `wide_rows` for rows of a megabyte or more."""
    for what, names in (("columns", columns), ("types", types or ())):
        if not isinstance(names, (list, tuple)) or not all(isinstance(name, str) for name in names):
            raise InvalidInputError(f"{what} must be a list of names, got {names!r}")
    if not isinstance(table, str) or (types and len(types) != len(columns)):
        raise InvalidInputError(f"copy_into needs a table name and one type per column, got {table!r}, {types!r}")
    target, column_list = sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    with conn.transaction():
        staging = None
        if row_security_applies(conn, table):
            if wide_rows:
                queued = _QueuedRows()
                yield queued
                placeholders = sql.SQL(", ").join(
                    sql.SQL("%b::{}").format(sql.SQL(kind)) for kind in types) if types else sql.SQL(", ").join(
                    sql.SQL("%b") for _ in columns)
                with conn.cursor() as cursor:
                    cursor.executemany(sql.SQL("insert into {} ({}) values ({})").format(
                        target, column_list, placeholders), queued.rows)
                return
            # One name per (table, columns): a second COPY in the same transaction reuses the table.
            staging = sql.Identifier(f"_arc_halo_staging_{table}_{zlib.crc32(','.join(columns).encode()):08x}")
            conn.execute(sql.SQL("create temporary table if not exists {} on commit drop as"
                                 " select {} from {} with no data").format(staging, column_list, target))
        with conn.cursor().copy(sql.SQL("copy {} ({}) from stdin (format binary)").format(
                staging or target, column_list)) as copy:
            if types:
                try:
                    copy.set_types(list(types))
                except KeyError as exc:
                    raise InvalidInputError(f"types: {exc.args[0]}; use PostgreSQL type names (uuid, text, int4...)") from None
            yield copy
        if staging is not None:
            conn.execute(sql.SQL("insert into {} ({}) select {} from {}").format(
                target, column_list, column_list, staging))
            conn.execute(sql.SQL("truncate {}").format(staging))
