"""Run one dbt Python model in this process, on dbt's own connection and transaction.

dbt compiles `models/**/<name>.py` into the model's code followed by dbt's `dbtObj` (ref, source,
config, this); the `table` and `incremental` materializations append `dbt_python_output`, the staging
table for the rows (arc_halo_python_script). Here: execute that code, call `model(dbt, session)`, and
insert the DataFrame it returns into the staging table. When the YAML declares every column's type the
materialization has created the table with them (and its constraints), and the frame's columns must be
exactly those; otherwise the table is created here, each column typed as the YAML declares, else as
the incremental target already has it, else as inferred from the frame (logged). The materialization
then moves the staging rows in, in the model's transaction.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from typing import Any

from dbt.adapters.events.logging import AdapterLogger
from dbt_common.exceptions import DbtRuntimeError
from psycopg2.extras import execute_values

from dbt.adapters.arc_halo.frame import Frame, RelationFrame, frame_from_cursor
from dbt.adapters.arc_halo.model_output import OutputColumn, inferred_type, output_columns

logger = AdapterLogger("arc_halo")

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


def rows_for(columns: dict[str, OutputColumn], declared: list[str], name: str) -> list[tuple[Any, ...]]:
    """The returned DataFrame's columns as rows in declared column order; refused unless its columns are
    exactly the declared ones."""
    missing = [column for column in declared if column not in columns]
    extra = [column for column in columns if column not in declared]
    if missing or extra:
        raise DbtRuntimeError(
            f"Python model {name} returned columns that differ from its YAML: missing {missing}, undeclared {extra}"
        )
    lengths = {len(columns[column].values) for column in declared}
    if len(lengths) > 1:
        raise DbtRuntimeError(f"Python model {name} returned columns of different lengths {sorted(lengths)}")
    return list(zip(*(columns[column].values for column in declared)))


def column_types(columns: dict[str, OutputColumn], declared: dict[str, str | None], existing: dict[str, str],
                 name: str) -> dict[str, str]:
    """Each returned column's type: declared in the YAML, else the incremental target's, else inferred
    from the frame (logged, so a reader sees what to declare)."""
    missing = [column for column, data_type in declared.items() if data_type and column not in columns]
    if missing:
        raise DbtRuntimeError(f"Python model {name} did not return the columns its YAML declares: {missing}")
    types: dict[str, str] = {}
    inferred: list[str] = []
    for column, values in columns.items():
        data_type = declared.get(column) or existing.get(column)
        if not data_type:
            data_type = inferred_type(values)
            if data_type is None:
                kinds = sorted({type(value).__name__ for value in values.values if value is not None})
                raise DbtRuntimeError(f"Python model {name}: no PostgreSQL type can be inferred for column {column}"
                                      f" (values of {', '.join(kinds)}); declare its data_type in the model's YAML")
            inferred.append(f"{column} {data_type}")
        types[column] = data_type
    if inferred:
        logger.info(f"Python model {name}: column types inferred from its DataFrame (declare data_type in its"
                    f" YAML to choose): {', '.join(inferred)}")
    return types


def _existing_types(session: Session, relation: str | None) -> dict[str, str]:
    if not relation:
        return {}
    frame = session.sql(
        "select attname::text, format_type(atttypid, atttypmod) from pg_catalog.pg_attribute"
        " where attrelid = to_regclass(%s) and attnum > 0 and not attisdropped order by attnum", (relation,))
    return dict(zip(frame["attname"].tolist(), frame["format_type"].tolist()))


def _where(exc: BaseException, path: str) -> str:
    """' (models/x.py, line N)' for the innermost frame of the model's own file, to point at the bug."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == path]
    return f" ({path}, line {frames[-1].lineno})" if frames else ""


def run(adapter: Any, parsed_model: dict[str, Any], compiled_code: str) -> int:
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
    columns = _read_output(result, name, path)
    output = namespace["dbt_python_output"]
    if namespace.get("dbt_python_output_created"):  # the YAML typed every column: the table exists
        order = list(parsed_model["columns"])
    else:
        declared = {column: spec.get("data_type") for column, spec in parsed_model["columns"].items()}
        types = column_types(columns, declared, _existing_types(session, namespace.get("dbt_python_existing")), name)
        order = list(types)
        adapter.connections.add_query(
            f"create table {output} ({', '.join(f'{quote(column)} {data_type}' for column, data_type in types.items())})",
            auto_begin=True)
    rows = rows_for(columns, order, name)
    connection = adapter.connections.get_thread_connection()
    with adapter.connections.exception_handler(f"insert into {output}"):
        with connection.handle.cursor() as cursor:
            insert_rows(cursor, output, order, rows)
    return len(rows)


def insert_rows(cursor: Any, relation: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    """The rows into `relation` on a psycopg2 cursor, a page of VALUES at a time (each value coerced to
    its column's type by PostgreSQL, as INSERT ... VALUES does)."""
    statement = f"insert into {relation} ({', '.join(map(quote, columns))}) values %s"
    execute_values(cursor, statement, rows, page_size=INSERT_PAGE_ROWS)


def _read_output(result: Any, name: str, path: str) -> dict[str, OutputColumn]:
    try:
        return output_columns(result)
    except TypeError as exc:
        raise DbtRuntimeError(f"Python model {name} ({path}): {exc}") from exc
