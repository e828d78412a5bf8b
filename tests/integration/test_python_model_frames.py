"""Issue 22: what a Python model returns reaches PostgreSQL unchanged, NULLs included.

Table-driven over column types x the frame types the adapter accepts (its own Frame, a dict of lists,
pandas as it builds columns by itself, pandas with nullable dtypes, polars): each frame goes through
the adapter's own path (model_output -> python_model.column_types / rows_for / insert_rows, on
psycopg2 as dbt-postgres uses) into a table on the real server, and the stored values are read back
and compared with the values the frame was built from. A float NULL must come back NULL and a NaN
NaN. Then the other direction: a table read as the adapter's Frame (what dbt.ref() gives a model),
turned into pandas or polars and returned, must store the same values again.
"""

from __future__ import annotations

import datetime
import math
import uuid
from decimal import Decimal

import numpy as np
import pandas as pd
import polars as pl
import psycopg2
import pytest
from dbt_common.exceptions import DbtRuntimeError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dbt.adapters.arc_halo.frame import Frame, frame_from_cursor
from dbt.adapters.arc_halo.model_output import output_columns
from dbt.adapters.arc_halo.python_model import column_types, insert_rows, quote, rows_for

NAN = float("nan")
UTC = datetime.timezone.utc
FIRST_UUID, SECOND_UUID = uuid.UUID(int=1), uuid.UUID(int=2**127 + 5)

# column type -> three values (one NULL), and the type each frame kind implies when the YAML says none
COLUMNS: dict[str, list] = {
    "boolean": [True, None, False],
    "smallint": [1, None, -32768],
    "integer": [7, None, 2**31 - 1],
    "bigint": [2**40, None, -1],
    "real": [1.5, None, NAN],
    "double precision": [0.1, None, NAN],
    "numeric": [Decimal("1.50"), None, Decimal("-2.25")],
    "text": ["a", None, "ü é"],
    "date": [datetime.date(2020, 1, 2), None, datetime.date(1999, 12, 31)],
    "timestamp without time zone": [datetime.datetime(2020, 1, 2, 3, 4, 5, 6000), None, datetime.datetime(1999, 12, 31)],
    "timestamp with time zone": [datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC), None,
                                 datetime.datetime(2021, 6, 1, tzinfo=UTC)],
    "time without time zone": [datetime.time(1, 2, 3), None, datetime.time(23, 59, 59, 999000)],
    "interval": [datetime.timedelta(days=1, seconds=5), None, datetime.timedelta(microseconds=-1)],
    "uuid": [FIRST_UUID, None, SECOND_UUID],
    "bytea": [b"\x00\x01\xff", None, b""],
    "jsonb": [{"a": 1}, None, {"b": None, "c": [1, "x"]}],
    "double precision[]": [[1.0, 2.5], None, []],
    "text[]": [["a", "b"], None, ["c"]],
}
NULLABLE_PANDAS = {"boolean": "boolean", "smallint": "Int16", "integer": "Int32", "bigint": "Int64", "text": "string"}
POLARS_TYPES = {"smallint": pl.Int16, "integer": pl.Int32, "real": pl.Float32, "numeric": pl.Decimal(10, 2)}
FRAME_KINDS = ("frame", "dict", "pandas", "pandas_nullable", "polars")


def column_name(data_type: str) -> str:
    return "c_" + data_type.replace(" ", "_").replace("[]", "_array")


def build_frame(kind: str, columns: dict[str, list]):
    """The frame a model would build from these values, the way each library holds them."""
    named = {column_name(data_type): values for data_type, values in columns.items()}
    if kind == "frame":
        return Frame(named)
    if kind == "dict":
        return named
    if kind == "pandas":
        return pd.DataFrame(named)
    if kind == "pandas_nullable":
        series = {}
        for data_type, values in columns.items():
            if data_type in NULLABLE_PANDAS:
                series[column_name(data_type)] = pd.array(values, dtype=NULLABLE_PANDAS[data_type])
            elif data_type in ("real", "double precision"):  # NaN and NA apart: values and mask given
                mask = np.array([value is None for value in values], dtype=bool)
                data = np.array([0.0 if value is None else value for value in values],
                                dtype=np.float32 if data_type == "real" else np.float64)
                series[column_name(data_type)] = pd.arrays.FloatingArray(data, mask)
            else:
                series[column_name(data_type)] = pd.Series(values, dtype=object)
        return pd.DataFrame(series)
    assert kind == "polars"
    series = []
    for data_type, values in columns.items():
        if data_type == "jsonb":  # polars has no JSON type (a struct would add every key to every row)
            values = [None if value is None else __import__("json").dumps(value) for value in values]
        if data_type == "uuid":
            values = [None if value is None else str(value) for value in values]
        series.append(pl.Series(column_name(data_type), values, dtype=POLARS_TYPES.get(data_type), strict=False))
    return pl.DataFrame(series)


def expected(kind: str, data_type: str, values: list) -> list:
    """What must be stored. pandas' own float columns (what pandas makes of a float column with a None)
    mark a missing value with NaN, so there a NaN is NULL, as pandas itself reads it."""
    if kind == "pandas" and data_type in ("real", "double precision"):
        return [None if value is None or math.isnan(value) else value for value in values]
    return values


def same(stored, wanted) -> bool:
    if wanted is None or stored is None:
        return stored is None and wanted is None
    if isinstance(wanted, float) and math.isnan(wanted):
        return isinstance(stored, float) and math.isnan(stored)
    if isinstance(wanted, uuid.UUID):
        return stored == str(wanted)
    if isinstance(wanted, bytes):
        return bytes(stored) == wanted
    if isinstance(wanted, float):
        return stored == pytest.approx(wanted, rel=1e-6)
    return stored == wanted


@pytest.fixture
def cursor(test_server):
    """A psycopg2 cursor (the driver dbt-postgres and the adapter use) for temporary tables, rolled back."""
    connection = psycopg2.connect(test_server.url("postgres"))
    try:
        with connection.cursor() as cursor:
            yield cursor
    finally:
        connection.rollback()
        connection.close()


def store(cursor, frame, declared: dict[str, str | None]) -> tuple[dict[str, str], dict[str, list]]:
    """The frame written as the adapter writes a model's result; the table's column types and values."""
    columns = output_columns(frame)
    types = column_types(columns, declared, {}, "frames_test")
    table = f"frames_{uuid.uuid4().hex[:8]}"
    cursor.execute(f"create temporary table {table} ({', '.join(f'{quote(c)} {t}' for c, t in types.items())})")
    insert_rows(cursor, table, list(types), rows_for(columns, list(types), "frames_test"))
    cursor.execute(f"select attname::text, format_type(atttypid, atttypmod) from pg_attribute"
                   f" where attrelid = '{table}'::regclass and attnum > 0 order by attnum")
    stored_types = dict(cursor.fetchall())
    cursor.execute(f"select * from {table}")
    names = [column.name for column in cursor.description]
    rows = cursor.fetchall()
    return stored_types, {name: [row[index] for row in rows] for index, name in enumerate(names)}


@pytest.mark.parametrize("kind", FRAME_KINDS)
def test_every_column_type_round_trips_with_nulls_under_declared_types(cursor, kind) -> None:
    declared = {column_name(data_type): data_type for data_type in COLUMNS}
    stored_types, stored = store(cursor, build_frame(kind, COLUMNS), declared)
    assert stored_types == declared  # the YAML's types, whatever the frame's dtypes
    for data_type, values in COLUMNS.items():
        wanted = expected(kind, data_type, values)
        got = stored[column_name(data_type)]
        assert all(same(s, w) for s, w in zip(got, wanted, strict=True)), (kind, data_type, got, wanted)


# Types inferred when the YAML declares none: per frame kind, where it differs from the declared type.
INFERRED_BY_KIND = {
    "frame": {"smallint": "bigint", "integer": "bigint", "real": "double precision"},
    "dict": {"smallint": "bigint", "integer": "bigint", "real": "double precision"},
    "pandas": {"boolean": "boolean", "smallint": "double precision", "integer": "double precision",
               "bigint": "double precision", "real": "double precision"},
    "pandas_nullable": {},
    "polars": {"uuid": "text", "jsonb": "text"},
}


@pytest.mark.parametrize("kind", FRAME_KINDS)
def test_without_declared_types_the_frame_decides_and_values_round_trip(cursor, kind) -> None:
    stored_types, stored = store(cursor, build_frame(kind, COLUMNS), {})
    wanted_types = {column_name(t): INFERRED_BY_KIND[kind].get(t, t) for t in COLUMNS}
    if kind == "polars":
        wanted_types[column_name("numeric")] = "numeric(10,2)"
    assert stored_types == wanted_types
    for data_type, values in COLUMNS.items():
        wanted = expected(kind, data_type, values)
        if kind == "polars" and data_type in ("uuid", "jsonb"):
            wanted = [None if value is None else str(value) if data_type == "uuid" else value for value in values]
            got = stored[column_name(data_type)]
            if data_type == "jsonb":
                got = [None if value is None else __import__("json").loads(value) for value in got]
            assert all(same(s, w) for s, w in zip(got, wanted, strict=True)), (kind, data_type)
            continue
        got = stored[column_name(data_type)]
        assert all(same(s, w) for s, w in zip(got, wanted, strict=True)), (kind, data_type, got, wanted)


@pytest.mark.parametrize("convert", ["frame", "to_pandas", "to_polars"])
def test_a_read_frame_returned_as_is_or_through_pandas_or_polars_stores_the_same_values(cursor, convert) -> None:
    """dbt.ref(...) with NULLs in every column (and a NaN), returned unchanged or after to_pandas() /
    to_polars(): the stored rows equal the source rows (NaT, NA and null become NULL again)."""
    declared = {column_name(data_type): data_type for data_type in COLUMNS}
    _, source = store(cursor, build_frame("dict", COLUMNS), declared)
    source_table = cursor.query.decode().split()[-1]
    cursor.execute(f"select * from {source_table}")
    frame = frame_from_cursor(cursor)
    assert math.isnan(frame[column_name("double precision")][2]) and frame[column_name("double precision")][1] is None
    returned = frame if convert == "frame" else getattr(frame, convert)()
    _, again = store(cursor, returned, declared)
    for name, values in source.items():
        assert all(same(s, w) for s, w in zip(again[name], values, strict=True)), (convert, name, again[name], values)


OPTIONAL_FLOATS = st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), max_size=6)


def _float_bits(value: float | None) -> bytes | str | None:
    """A float's exact bits; any NaN as 'nan' (rows go to PostgreSQL as text, whose NaN has no payload)."""
    return None if value is None else "nan" if math.isnan(value) else np.float64(value).tobytes()


# derandomize: CI runs the same examples every time (a NaN payload found at random once failed one run).
@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=OPTIONAL_FLOATS)
@example(values=[None, np.frombuffer((0x7FF8000000000001).to_bytes(8, "little")).item(), -0.0, 5e-324])
def test_any_float_column_with_nulls_nans_and_infinities_is_stored_exactly(cursor, values) -> None:
    """Hypothesis: NULL, NaN, +/-inf, -0.0 and subnormals through each frame kind that can tell NULL from
    NaN, into double precision, come back bit for bit (NULL as NULL, NaN as NaN)."""
    for kind in ("frame", "dict", "pandas_nullable", "polars"):
        _, stored = store(cursor, build_frame(kind, {"double precision": values}),
                          {column_name("double precision"): "double precision"})
        got = stored[column_name("double precision")]
        assert [_float_bits(v) for v in got] == [_float_bits(v) for v in values], (kind, got, values)


def test_typed_columns_without_nulls_keep_their_numpy_dtype_and_a_nan() -> None:
    frame = Frame({"x": np.array([1.0, np.nan], dtype=np.float32), "n": np.array([1, 2], dtype=np.int16)})
    columns = output_columns(frame)
    assert columns["x"].values[0] == 1.0 and math.isnan(columns["x"].values[1])
    assert column_types(columns, {}, {}, "m") == {"x": "real", "n": "smallint"}
    masked = output_columns({"m": np.ma.masked_array([1.5, np.nan, 3.0], mask=[False, False, True])})
    assert masked["m"].values[0] == 1.5 and math.isnan(masked["m"].values[1]) and masked["m"].values[2] is None


def test_declared_types_win_over_existing_and_inferred_and_mixed_values_must_be_declared() -> None:
    columns = output_columns({"a": [1, 2], "b": [1.5, None], "c": ["x", None]})
    types = column_types(columns, {"a": "numeric(10,2)"}, {"b": "real", "a": "integer"}, "m")
    assert types == {"a": "numeric(10,2)", "b": "real", "c": "text"}
    with pytest.raises(DbtRuntimeError, match=r"no PostgreSQL type can be inferred for column mixed \(values of int, str\)"):
        column_types(output_columns({"mixed": [1, "one"]}), {}, {}, "m")
    with pytest.raises(DbtRuntimeError, match=r"did not return the columns its YAML declares: \['gone'\]"):
        column_types(columns, {"gone": "integer"}, {}, "m")
