"""What a Python model returns, read column by column: Python values with None for NULL, and the
PostgreSQL type its frame implies (used only for columns whose type the YAML does not declare).

Accepted: the adapter's Frame, a mapping of columns (lists or numpy arrays, masked arrays too), a
pandas or a polars DataFrame. NULL is each library's own missing value: None, a masked entry, pandas'
NA/NaT (and NaN in a numpy-backed float column, pandas' marker for missing), polars' null. A NaN
anywhere else is a real NaN and is stored as one. pandas and polars are never imported here: the
model that returns their frames has them.
"""

from __future__ import annotations

import datetime
import decimal
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from psycopg2.extensions import AsIs, register_adapter
from psycopg2.extras import Json

from dbt.adapters.arc_halo.frame import Frame

# polars dtypes by name (str(dtype) without parameters); Datetime and List are read apart.
POLARS_TYPES = {
    "Int8": "smallint", "Int16": "smallint", "Int32": "integer", "Int64": "bigint",
    "UInt8": "smallint", "UInt16": "integer", "UInt32": "bigint", "UInt64": "numeric",
    "Float32": "real", "Float64": "double precision", "Decimal": "numeric", "Boolean": "boolean",
    "String": "text", "Utf8": "text", "Categorical": "text", "Enum": "text", "Date": "date", "Time": "time",
    "Duration": "interval", "Binary": "bytea",
}


class UuidText(str):
    """A UUID on its way to psycopg2 (which sends it as text), still inferred as `uuid`."""


class NegativeZero(float):
    """-0.0 on its way to psycopg2, which writes it as ` -0.0`: PostgreSQL reads that as minus numeric
    zero, which has no sign, and the column would get +0. Sent as a float8 literal instead."""


register_adapter(NegativeZero, lambda _value: AsIs("'-0'::float8"))


def _signed(value: Any) -> Any:
    if isinstance(value, float) and value == 0.0 and math.copysign(1.0, value) < 0:
        return NegativeZero(-0.0)
    return value


@dataclass(frozen=True)
class OutputColumn:
    values: list[Any]
    frame_type: str | None  # from the column's dtype; None: decide from the values


def numpy_type(dtype: np.dtype) -> str | None:
    kind, size = dtype.kind, dtype.itemsize
    if kind == "b":
        return "boolean"
    if kind == "i":
        return {1: "smallint", 2: "smallint", 4: "integer"}.get(size, "bigint")
    if kind == "u":
        return {1: "smallint", 2: "integer", 4: "bigint"}.get(size, "numeric")
    if kind == "f":
        return "real" if size <= 4 else "double precision"
    return {"M": "timestamp", "m": "interval", "U": "text", "S": "bytea"}.get(kind)


def plain(value: Any) -> Any:
    """One value as psycopg2 sends it: None for every library's missing value, numpy scalars and
    arrays as Python values, pandas timestamps as datetimes, UUIDs as text, dicts as JSON."""
    if value is None or value is np.ma.masked:
        return None
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas.NA, pandas.NaT
        return None
    if isinstance(value, (np.datetime64, np.timedelta64)):
        return value.astype(f"{value.dtype.kind}8[us]").item()  # [ns].item() would be an int; NaT -> None
    if isinstance(value, np.generic):
        return _signed(value.item())
    if isinstance(value, np.ndarray):
        return [plain(item) for item in numpy_values(value)]
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, uuid.UUID):
        return UuidText(value)
    if isinstance(value, dict):
        return Json(value)
    if hasattr(value, "to_pydatetime"):  # pandas.Timestamp
        return value.to_pydatetime()
    if hasattr(value, "to_pytimedelta"):  # pandas.Timedelta
        return value.to_pytimedelta()
    return _signed(value)


def numpy_values(array: np.ndarray) -> list[Any]:
    """A numpy column's values; a masked entry is NULL, a NaN stays a NaN."""
    if array.dtype.kind in "mM":
        array = array.astype(f"{array.dtype.kind}8[us]")  # tolist() of [ns] gives ints
    mask = np.ma.getmaskarray(array) if isinstance(array, np.ma.MaskedArray) else None
    values = np.ma.getdata(array).tolist() if array.dtype != object else list(array)
    if mask is not None:
        values = [None if masked else value for value, masked in zip(values, mask.tolist())]
    return values


def _pandas_column(series: Any) -> OutputColumn:
    dtype = series.dtype
    if isinstance(dtype, np.dtype):
        frame_type = numpy_type(dtype) if dtype != object else None
        if dtype.kind == "f":  # NaN is how a numpy-backed pandas column marks a missing value
            return OutputColumn([None if math.isnan(v) else v for v in series.to_numpy().tolist()], frame_type)
    elif getattr(dtype, "tz", None) is not None:
        frame_type = "timestamp with time zone"
    elif isinstance(getattr(dtype, "numpy_dtype", None), np.dtype) and dtype.kind in "biuf":  # Int64, boolean...
        frame_type = numpy_type(dtype.numpy_dtype)
    elif dtype.kind == "M":
        frame_type = "timestamp"
    else:
        frame_type = "text" if dtype.name in ("string", "str") else None
    # Masked dtypes (Int64, Float64, boolean, string) replace only their missing entries: a NaN stays.
    values = series.to_numpy(dtype=object, na_value=None).tolist()
    return OutputColumn([plain(value) for value in values], frame_type)


def polars_type(dtype: Any) -> str | None:
    name = str(dtype).split("(")[0].split("[")[0]
    if name == "Datetime":
        return "timestamp with time zone" if getattr(dtype, "time_zone", None) else "timestamp"
    if name == "Decimal" and getattr(dtype, "precision", None):
        return f"numeric({dtype.precision},{dtype.scale or 0})"
    if name in ("List", "Array"):
        inner = polars_type(dtype.inner)
        return f"{inner}[]" if inner else None
    return POLARS_TYPES.get(name)


def _sequence_column(values: Any) -> OutputColumn:
    if isinstance(values, np.ndarray) and values.ndim == 1:
        frame_type = numpy_type(values.dtype) if values.dtype != object else None
        return OutputColumn([plain(value) for value in numpy_values(values)], frame_type)
    return OutputColumn([plain(value) for value in values], None)


def output_columns(result: Any) -> dict[str, OutputColumn]:
    """A model's return value by column, in the frame's column order."""
    module = type(result).__module__.split(".")[0]
    if module == "pandas" and hasattr(result, "columns"):
        return {str(name): _pandas_column(result[name]) for name in result.columns}
    if module == "polars" and hasattr(result, "get_columns"):
        return {series.name: OutputColumn([plain(value) for value in series.to_list()], polars_type(series.dtype))
                for series in result.get_columns()}
    if isinstance(result, Frame):
        return {name: _sequence_column(values) for name, values in result.to_dict().items()}
    if isinstance(result, Mapping):
        return {str(name): _sequence_column(values) for name, values in result.items()}
    raise TypeError(
        f"a Python model returns a DataFrame (Frame, dict of columns, pandas or polars), not {type(result).__name__}"
    )


def _value_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "double precision"
    if isinstance(value, decimal.Decimal):
        return "numeric"
    if isinstance(value, datetime.datetime):
        return "timestamp with time zone" if value.tzinfo is not None else "timestamp"
    if isinstance(value, datetime.date):
        return "date"
    if isinstance(value, datetime.time):
        return "time"
    if isinstance(value, datetime.timedelta):
        return "interval"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytea"
    if isinstance(value, Json):
        return "jsonb"
    if isinstance(value, UuidText):
        return "uuid"
    if isinstance(value, str):
        return "text"
    return None


def inferred_type(column: OutputColumn) -> str | None:
    """The column's PostgreSQL type: its dtype's, else its values' (ints with floats are double
    precision, a list is an array of its items' type); text when nothing tells (all NULL); None when
    the values disagree (then the YAML must say)."""
    if column.frame_type:
        return column.frame_type
    present = [value for value in column.values if value is not None]
    if present and all(isinstance(value, list) for value in present):
        item_type = inferred_type(OutputColumn([item for value in present for item in value], None))
        return f"{item_type}[]" if item_type else None
    types = {_value_type(value) for value in present}
    if types == {"bigint", "double precision"}:
        return "double precision"
    if types == {"timestamp", "timestamp with time zone"}:
        return "timestamp with time zone"
    if not types:
        return "text"
    return types.pop() if len(types) == 1 else None
