"""Run one dbt Python model in this process, on dbt's own connection and transaction.

dbt compiles `models/**/<name>.py` into the model's code followed by dbt's `dbtObj` (ref, source,
config, this); the `table` materialization appends `dbt_python_output`, the staging table it created
with the YAML's declared column types. Here: execute that code, call `model(dbt, session)`, and insert
the DataFrame it returns into the staging table, whose columns it must match by name. The
materialization then swaps the staging rows in atomically.
"""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from dbt_common.exceptions import DbtRuntimeError
from psycopg2.extras import execute_values

from dbt.adapters.arc_halo.frame import Frame, RelationFrame, columns_of, frame_from_cursor

INSERT_PAGE_ROWS = 1000


class Session:
    """The `session` argument of `model(dbt, session)`: SQL on the build's connection, in its transaction
    (so a model reads exactly what the build has written so far)."""

    def __init__(self, adapter: Any) -> None:
        self._adapter = adapter

    def sql(self, query: str, params: Sequence[Any] | None = None) -> Frame:
        """Run a query (e.g. over `dbt.ref(...)`'s relation, to read only part of it) and return a Frame."""
        _, cursor = self._adapter.connections.add_query(query, auto_begin=True, bindings=params)
        return frame_from_cursor(cursor)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def plain(value: Any) -> Any:
    """A value psycopg2 can send: numpy scalars and arrays as Python values, UUIDs as text."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def rows_for(result: Any, declared: list[str], name: str) -> list[tuple]:
    """The returned DataFrame as rows in declared column order; refused unless its columns are exactly
    the declared ones."""
    columns = columns_of(result)
    missing = [column for column in declared if column not in columns]
    extra = [column for column in columns if column not in declared]
    if missing or extra:
        raise DbtRuntimeError(
            f"Python model {name} returned columns that differ from its YAML: missing {missing}, undeclared {extra}"
        )
    lengths = {len(columns[column]) for column in declared}
    if len(lengths) > 1:
        raise DbtRuntimeError(f"Python model {name} returned columns of different lengths {sorted(lengths)}")
    return [tuple(plain(value) for value in row) for row in zip(*(columns[column] for column in declared))]


def _where(exc: BaseException, path: str) -> str:
    """' (models/x.py, line N)' for the innermost frame of the model's own file, to point at the bug."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == path]
    return f" ({path}, line {frames[-1].lineno})" if frames else ""


def run(adapter: Any, parsed_model: dict, compiled_code: str) -> int:
    """Execute the model and write its rows into the staging table; returns the number of rows."""
    name = parsed_model["name"]
    path = parsed_model.get("original_file_path", name)
    namespace: dict[str, Any] = {"__name__": f"dbt_python_model_{name}"}
    session = Session(adapter)
    try:
        exec(compile(compiled_code, path, "exec"), namespace)  # noqa: S102 - the project's own model code
        dbt = namespace["dbtObj"](lambda relation: RelationFrame(relation, session.sql))
        result = namespace["model"](dbt, session)
    except DbtRuntimeError:
        raise
    except Exception as exc:
        raise DbtRuntimeError(f"Python model {name} raised {type(exc).__name__}: {exc}{_where(exc, path)}") from exc
    declared = list(parsed_model["columns"])
    rows = rows_for(result, declared, name)
    statement = f"insert into {namespace['dbt_python_output']} ({', '.join(map(quote, declared))}) values %s"
    connection = adapter.connections.get_thread_connection()
    with adapter.connections.exception_handler(statement):
        with connection.handle.cursor() as cursor:
            execute_values(cursor, statement, rows, page_size=INSERT_PAGE_ROWS)
    return len(rows)
