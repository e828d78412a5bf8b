"""Bulk writes: binary COPY that row-level security accepts. Every library write path of many rows uses it.

PostgreSQL refuses `COPY FROM` into a table whose policies apply to the current role ("COPY FROM not
supported with row-level security"). Then the rows are copied into a temporary staging table (no
policies, no WAL) and moved with one `INSERT ... SELECT`, which the policies check like any insert.
A role the policies do not apply to (the owner, or RLS off) copies straight into the table.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator, Sequence

import psycopg
from psycopg import sql


def row_security_applies(conn: psycopg.Connection, table: str) -> bool:
    """Whether the policies of `table` apply to this connection's current role right now."""
    return conn.execute("select row_security_active(%s::regclass)", (table,)).fetchone()[0]


@contextlib.contextmanager
def copy_into(conn: psycopg.Connection, table: str, columns: Sequence[str],
              types: Sequence[str] | None = None) -> Iterator[psycopg.Copy]:
    """A binary `COPY table (columns) FROM STDIN` to write rows to (`copy.write_row`), in the caller's
    transaction or its own. `types` are the binary wire types of the columns, when they differ from
    what psycopg would guess from the Python values (see psycopg's `Copy.set_types`)."""
    target, column_list = sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    with conn.transaction():
        staging = None
        if row_security_applies(conn, table):
            # One name per (table, columns): a second COPY in the same transaction reuses the table.
            staging = sql.Identifier(f"_arc_halo_staging_{table}_{zlib.crc32(','.join(columns).encode()):08x}")
            conn.execute(sql.SQL("create temporary table if not exists {} on commit drop as"
                                 " select {} from {} with no data").format(staging, column_list, target))
        with conn.cursor().copy(sql.SQL("copy {} ({}) from stdin (format binary)").format(
                staging or target, column_list)) as copy:
            if types:
                copy.set_types(list(types))
            yield copy
        if staging is not None:
            conn.execute(sql.SQL("insert into {} ({}) select {} from {}").format(
                target, column_list, column_list, staging))
            conn.execute(sql.SQL("truncate {}").format(staging))
