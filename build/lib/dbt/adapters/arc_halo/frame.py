"""The DataFrame of the adapter's Python models: named numpy columns of equal length.

Why not pandas: the models here are numpy code, and pandas (with its own type inference) would add a
large dependency to every install for no computation the models need. A model that prefers pandas or
polars calls `frame.to_pandas()` and may return either; the adapter reads any of them by column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

# PostgreSQL type OIDs read into typed numpy arrays; every other type stays as Python objects.
NUMPY_TYPES = {16: np.bool_, 20: np.int64, 21: np.int16, 23: np.int32, 700: np.float32, 701: np.float64}


def as_column(values: Sequence[Any] | np.ndarray, dtype: Any = None) -> np.ndarray:
    """A 1-d array: typed when `dtype` is given and no value is NULL, otherwise of Python objects
    (filled one by one, so equal-length lists such as float4[] rows stay one value each)."""
    if isinstance(values, np.ndarray) and values.ndim == 1:
        return values
    values = list(values)
    if dtype is not None and all(value is not None for value in values):
        return np.array(values, dtype=dtype)
    if dtype is not None and np.issubdtype(dtype, np.floating):
        return np.array([np.nan if value is None else value for value in values], dtype=dtype)
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

    def to_pandas(self):  # pragma: no cover - pandas is not a dependency of this project
        import pandas

        return pandas.DataFrame(self.data)

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


def columns_of(result: Any) -> dict[str, Sequence[Any]]:
    """A model's return value by column: a Frame, a mapping of columns, or a pandas/polars DataFrame."""
    if isinstance(result, Frame):
        return result.to_dict()
    if isinstance(result, Mapping):
        return {str(name): values for name, values in result.items()}
    if hasattr(result, "columns") and hasattr(result, "__getitem__"):
        return {str(name): list(result[name]) for name in result.columns}
    raise TypeError(
        f"a Python model returns a DataFrame (Frame, dict of columns, pandas or polars), not {type(result).__name__}"
    )
