"""Tensor store: numpy arrays in tensor_metadata + tensor_data (chunked bytea), verified by SHA-256.

A tensor's metadata and chunks are written in one transaction, so a failed or killed upload leaves
nothing visible. Reads stream chunks straight into one preallocated array.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

import numpy as np
import psycopg

from arc_halo.dtypes import dtype_name, numpy_dtype

# 8 MiB: large enough that per-row overhead vanishes, small enough to stay far below bytea's 1 GB limit.
DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024


class TensorIntegrityError(Exception):
    """Stored bytes do not match their checksum, or chunks are missing."""


@dataclass(frozen=True)
class TensorInfo:
    tensor_id: uuid.UUID
    tensor_name: str
    shape: tuple[int, ...]
    dtype: str
    byte_size: int
    content_sha256: str
    chunk_count: int | None


def _raw_bytes(array: np.ndarray) -> tuple[np.ndarray, memoryview]:
    """C-contiguous little-endian copy (only when needed) and a flat byte view of it."""
    data = np.ascontiguousarray(array).reshape(np.shape(array))  # ascontiguousarray makes 0-d arrays 1-d
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("<"))
    return data, memoryview(data.reshape(-1).view(np.uint8))


def put(
    conn: psycopg.Connection, array: np.ndarray, name: str, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> uuid.UUID:
    """Store `array`; returns its tensor_id. Atomic: inside the caller's transaction, or its own."""
    if chunk_bytes <= 0:
        raise ValueError("chunk_bytes must be positive")
    data, raw = _raw_bytes(array)
    total = len(raw)
    chunk_count = (total + chunk_bytes - 1) // chunk_bytes
    with conn.transaction():
        tensor_id = conn.execute(
            """insert into tensor_metadata (tensor_name, shape, dtype, element_count, byte_size, content_sha256,
                                            storage_kind, chunk_size_bytes, chunk_count)
               values (%s, %s, %s, %s, %s, %s, 'chunked', %s, %s) returning tensor_id""",
            (name, list(data.shape), dtype_name(data.dtype), data.size, total,
             hashlib.sha256(raw).hexdigest(), chunk_bytes, chunk_count),
        ).fetchone()[0]
        if chunk_count:
            with conn.cursor().copy(
                "copy tensor_data (tensor_id, chunk_index, chunk_data, chunk_sha256) from stdin (format binary)"
            ) as copy:
                copy.set_types(["uuid", "int4", "bytea", "text"])
                for index in range(chunk_count):
                    chunk = raw[index * chunk_bytes:(index + 1) * chunk_bytes]
                    copy.write_row((tensor_id, index, chunk, hashlib.sha256(chunk).hexdigest()))
    return tensor_id


def info(conn: psycopg.Connection, tensor_id: uuid.UUID | str) -> TensorInfo:
    row = conn.execute(
        """select tensor_id, tensor_name, shape, dtype, byte_size, content_sha256, chunk_count
           from tensor_metadata where tensor_id = %s""", (tensor_id,),
    ).fetchone()
    if row is None:
        raise KeyError(f"no tensor {tensor_id}")
    return TensorInfo(row[0], row[1], tuple(row[2]), row[3], row[4], row[5], row[6])


def get(conn: psycopg.Connection, tensor_id: uuid.UUID | str) -> np.ndarray:
    """The stored array, every chunk and the whole verified against their SHA-256."""
    meta = info(conn, tensor_id)
    out = np.empty(meta.shape, dtype=numpy_dtype(meta.dtype))
    target = memoryview(out.reshape(-1).view(np.uint8))
    whole = hashlib.sha256()
    offset = expected_index = 0
    with conn.cursor().copy(
        "copy (select chunk_index, chunk_data, chunk_sha256 from tensor_data where tensor_id = %s"
        " order by chunk_index) to stdout (format binary)", (meta.tensor_id,),
    ) as copy:
        copy.set_types(["int4", "bytea", "text"])
        for index, chunk, digest in copy.rows():
            if index != expected_index:
                raise TensorIntegrityError(f"tensor {meta.tensor_id} ({meta.tensor_name}): chunk {expected_index} is missing")
            if hashlib.sha256(chunk).hexdigest() != digest:
                raise TensorIntegrityError(f"tensor {meta.tensor_id} ({meta.tensor_name}): chunk {index} is corrupted")
            end = offset + len(chunk)
            if end > meta.byte_size:
                raise TensorIntegrityError(f"tensor {meta.tensor_id} ({meta.tensor_name}): chunk {index} overruns the tensor")
            target[offset:end] = chunk
            whole.update(chunk)
            offset, expected_index = end, expected_index + 1
    if offset != meta.byte_size:
        raise TensorIntegrityError(
            f"tensor {meta.tensor_id} ({meta.tensor_name}): {offset} of {meta.byte_size} bytes present"
        )
    if whole.hexdigest() != meta.content_sha256:
        raise TensorIntegrityError(f"tensor {meta.tensor_id} ({meta.tensor_name}): content checksum mismatch")
    return out
