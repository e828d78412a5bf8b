"""The DataFrame of the adapter's Python models: named numpy columns of equal length.

Why not pandas: the models here are numpy code, and pandas (with its own type inference) would add a
large dependency to every install for no computation the models need. A model that prefers pandas or
polars calls `frame.to_pandas()` / `frame.to_polars()` and may return either; the adapter reads any of
them by column (model_output.py).

NULL is None here, never NaN: a column with a NULL is an array of Python objects (as numpy has no
missing value for integers, booleans or dates), so a float NaN read from the database stays a NaN.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

# PostgreSQL type OIDs read into typed numpy arrays; every other type stays as Python objects.
NUMPY_TYPES = {16: np.bool_, 20: np.int64, 21: np.int16, 23: np.int32, 700: np.float32, 701: np.float64}


def as_column(values: Sequence[Any] | np.ndarray, dtype: Any = None) -> np.ndarray:
    """A 1-d array: typed when `dtype` is given and no value is NULL, otherwise of Python objects with
    None for NULL (filled one by one, so equal-length lists such as float4[] rows stay one value each)."""
    if isinstance(values, np.ndarray) and values.ndim == 1:
        return values
    values = list(values)
    if dtype is not None and all(value is not None for value in values):
        return np.array(values, dtype=dtype)
    column = np.empty(len(values), dtype=object)
    for index, value in enumerate(values):
        column[index] = value
    return column


class Frame:
    """Columns by name. `frame["x"]` is a numpy array, `len(frame)` the row count, iteration gives the
    column names (as in pandas)."""

    def __init__(self, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> None:
        self._columns = {str(name): as_column(values) for name, values in columns.items()}
        lengths = {len(values) for values in self._columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of different lengths: {sorted(lengths)}")

    @property
    def data(self) -> dict[str, np.ndarray]:
        return self._columns

    @property
    def columns(self) -> list[str]:
        return list(self.data)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(next(iter(self.data.values()))) if self.data else 0

    def to_dict(self) -> dict[str, np.ndarray]:
        return dict(self.data)

    def to_pandas(self) -> Any:
        """A pandas DataFrame (pandas is the model's own dependency, not the adapter's). NULLs become
        pandas' missing values in nullable dtypes (Int64, boolean, string, NaT), and float columns are
        Float64, where a NaN stays a NaN distinct from NULL, so the frame returns to the database as it
        came."""
        import pandas

        return pandas.DataFrame({name: _pandas_column(pandas, values) for name, values in self.data.items()})

    def to_polars(self) -> Any:
        """A polars DataFrame (polars keeps NULL and NaN apart by itself). JSON objects stay Python
        objects: as a polars struct every row would gain every other row's keys."""
        import polars

        def series(name: str, values: np.ndarray) -> Any:
            if values.dtype != object:
                return polars.Series(name, values)
            if any(isinstance(value, dict) for value in values):
                return polars.Series(name, values.tolist(), dtype=polars.Object)
            return polars.Series(name, values.tolist())

        return polars.DataFrame([series(name, values) for name, values in self.data.items()])

    def __repr__(self) -> str:
        return f"Frame({len(self)} rows: {', '.join(self.columns)})"


class RelationFrame(Frame):
    """What `dbt.ref()` / `dbt.source()` return: a relation read on first use of its columns. Its
    `relation` (also `str(frame)`) goes into `session.sql(...)` to read only part of it."""

    def __init__(self, relation: str, read: Callable[[str], Frame]) -> None:
        self.relation = relation
        self._read = read
        self._loaded: dict[str, np.ndarray] | None = None

    @property
    def data(self) -> dict[str, np.ndarray]:
        if self._loaded is None:
            self._loaded = self._read(f"select * from {self.relation}").data
        return self._loaded

    def __str__(self) -> str:
        return self.relation

    def __repr__(self) -> str:
        return f"RelationFrame({self.relation})"


def _pandas_column(pandas: Any, values: np.ndarray) -> Any:
    """One column for to_pandas(): masked (nullable) arrays where pandas has them."""
    if values.dtype.kind == "f":
        return pandas.arrays.FloatingArray(values, np.zeros(len(values), dtype=bool))
    if values.dtype != object:
        return values
    missing = np.array([value is None for value in values], dtype=bool)
    present = [value for value in values if value is not None]
    kinds = {type(value) for value in present}
    if not present:
        return values
    if kinds == {bool}:
        return pandas.arrays.BooleanArray(np.array([bool(value) for value in values]), missing)
    if kinds == {int}:
        return pandas.arrays.IntegerArray(np.array([value or 0 for value in values], dtype=np.int64), missing)
    if kinds <= {int, float}:
        return pandas.arrays.FloatingArray(np.array([value or 0.0 for value in values], dtype=np.float64), missing)
    if kinds == {str}:
        return pandas.array(list(values), dtype="string")
    if all(isinstance(value, datetime.datetime) for value in present):
        aware = any(value.tzinfo is not None for value in present)
        return pandas.to_datetime(pandas.Series(list(values), dtype=object), utc=aware).array
    return values  # no nullable pandas dtype for it (numeric, date, uuid, arrays...): Python objects, None kept


def frame_from_cursor(cursor: Any) -> Frame:
    """A DB-API cursor's result (psycopg2, as dbt-postgres uses) as a Frame."""
    description = cursor.description or []
    names = [column.name for column in description]
    if len(set(names)) != len(names):
        raise ValueError(f"query returns duplicate column names: {names}")
    rows = cursor.fetchall()
    return Frame({
        column.name: as_column([row[index] for row in rows], NUMPY_TYPES.get(column.type_code))
        for index, column in enumerate(description)
    })
