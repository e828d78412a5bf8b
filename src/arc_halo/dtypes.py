"""Tensor element types: the names in the tensor_dtypes table and their numpy dtypes.

bfloat16 and the float8 types come from ml_dtypes (the package JAX and TensorFlow use for them).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from arc_halo.errors import InvalidInputError

NUMPY_DTYPES: dict[str, np.dtype] = {
    "float64": np.dtype(np.float64),
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float8_e4m3fn": np.dtype(ml_dtypes.float8_e4m3fn),
    "float8_e5m2": np.dtype(ml_dtypes.float8_e5m2),
    "int64": np.dtype(np.int64),
    "int32": np.dtype(np.int32),
    "int16": np.dtype(np.int16),
    "int8": np.dtype(np.int8),
    "uint64": np.dtype(np.uint64),
    "uint32": np.dtype(np.uint32),
    "uint16": np.dtype(np.uint16),
    "uint8": np.dtype(np.uint8),
    "bool": np.dtype(np.bool_),
    "complex64": np.dtype(np.complex64),
    "complex128": np.dtype(np.complex128),
}
_NAMES = {dtype: name for name, dtype in NUMPY_DTYPES.items()}


def dtype_name(dtype: np.dtype) -> str:
    """The tensor_dtypes name of a numpy dtype (byte order ignored: data is stored little-endian)."""
    try:
        name = _NAMES.get(np.dtype(dtype).newbyteorder("="))
    except (TypeError, ValueError):  # not a dtype at all
        name = None
    if name is None:
        raise InvalidInputError(f"dtype {dtype} is not storable; supported: {', '.join(NUMPY_DTYPES)}")
    return name


def numpy_dtype(name: str) -> np.dtype:
    try:
        return NUMPY_DTYPES[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name
        raise InvalidInputError(f"unknown tensor dtype {name!r}; supported: {', '.join(NUMPY_DTYPES)}") from None
