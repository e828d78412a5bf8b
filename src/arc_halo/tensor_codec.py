"""The tensor store's bytes: an array's little-endian C-order bytes and their digests, and tensor_data
rows in PostgreSQL's documented binary COPY format, written (chunk_blocks) and read (chunk_rows) without a
Python object per field. No connection is opened here: arc_halo.tensors moves the bytes."""

from __future__ import annotations

import hashlib
import numbers
import re
import struct
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import psycopg

from arc_halo import validation
from arc_halo.dtypes import dtype_name
from arc_halo.errors import InvalidInputError, TensorIntegrityError

_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_INT4 = struct.Struct("!i")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _raw_bytes(array: np.ndarray) -> tuple[np.ndarray, memoryview]:
    """C-contiguous little-endian copy (only when needed) and a flat byte view of it."""
    data = np.ascontiguousarray(array).reshape(np.shape(array))  # ascontiguousarray makes 0-d arrays 1-d
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("<"))
    return data, data.reshape(-1).view(np.uint8).data


def sha256(data: memoryview) -> str:
    """The SHA-256 (hex) of a tensor's bytes or of one of its chunks."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidInputError(f"data must be bytes or a memoryview, got {type(data).__name__}")
    return hashlib.sha256(data).hexdigest()


def layout_digest(dtype: str, shape: tuple[int, ...] | list[int], content_sha256: str) -> str:
    """The SHA-256 binding a tensor's dtype and shape to its content digest: a read recomputes it from the
    metadata row, so an edit of the dtype or the shape is detected even when the byte size stays the same."""
    if not isinstance(shape, (tuple, list)) or not all(isinstance(n, numbers.Integral) for n in shape):
        raise InvalidInputError(f"shape must be a sequence of whole numbers, got {shape!r}")
    return hashlib.sha256(f"{dtype}|{','.join(str(int(n)) for n in shape)}|{content_sha256}".encode()).hexdigest()


def content_digest(array: np.ndarray) -> str:
    """The SHA-256 `put` records as content_sha256 for `array` (its little-endian C-order bytes)."""
    return sha256(_raw_bytes(validation.numeric_array("array", array))[1])


CHUNK_COLUMNS = ("tensor_id", "chunk_index", "chunk_data", "chunk_sha256")
CHUNK_TYPES = ("uuid", "int4", "bytea", "text")
# Chunks up to this size go in as pre-encoded binary COPY rows (through a staging table where the
# policies apply); larger ones row by row, as one pipelined INSERT each where the policies apply (staging
# would write their bytes twice; see bulk.copy_into's wide_rows).
SMALL_CHUNK_LIMIT = 64 * 1024
_COPY_TRAILER = b"\xff\xff"
_ROW_HEAD = struct.Struct("!hi16sii")  # field count, then uuid (length 16) and int4 (length 4) fields
BLOCK_BYTES = 1 << 20


# Chunks of one tensor to write: its id, its bytes, the chunk size and which chunks.
ChunkRange = tuple[uuid.UUID, memoryview, int, range]


def chunk_blocks(pieces: Sequence[ChunkRange]) -> Iterator[bytes]:
    """Binary COPY data (signature, rows, trailer) of the chunks in `pieces`, in ~1 MiB blocks.

    Encoding the rows here, a block at a time, costs the client a fraction of one `write_row` per 8 KB
    chunk; the layout is PostgreSQL's documented binary COPY format (as in chunk_rows).
    """
    parts: list[bytes | memoryview] = [_COPY_SIGNATURE, b"\x00\x00\x00\x00\x00\x00\x00\x00"]  # flags, header extension length
    size = 0
    for tensor_id, raw, chunk_bytes, indices in pieces:
        key = tensor_id.bytes
        for index in indices:
            chunk = raw[index * chunk_bytes:(index + 1) * chunk_bytes]
            parts += (_ROW_HEAD.pack(4, 16, key, 4, index), _INT4.pack(len(chunk)), chunk,
                      b"\x00\x00\x00\x40", sha256(chunk).encode())
            size += len(chunk)
            if size >= BLOCK_BYTES:
                yield b"".join(parts)
                parts, size = [], 0
    parts.append(_COPY_TRAILER)
    yield b"".join(parts)


@dataclass(frozen=True)
class TensorBytes:
    """An array ready to store: its little-endian C-order bytes, their SHA-256, dtype and shape."""

    data: np.ndarray
    raw: memoryview
    content_sha256: str
    dtype: str
    shape: list[int]

    @classmethod
    def of(cls, array: np.ndarray, content_sha256: str | None = None) -> TensorBytes:
        """`content_sha256` is `content_digest(array)` when the caller has already computed it."""
        if content_sha256 is not None and not (isinstance(content_sha256, str) and _SHA256.fullmatch(content_sha256)):
            raise InvalidInputError(f"content_sha256 must be 64 lowercase hex digits, got {content_sha256!r}")
        try:
            dtype = dtype_name(np.asarray(array).dtype)  # before the byte view, which object arrays refuse
        except (TypeError, ValueError) as exc:
            if isinstance(exc, InvalidInputError):
                raise
            raise InvalidInputError(f"a tensor must be a numpy array (or nested lists of numbers), got "
                                    f"{type(array).__name__}: {exc}") from None
        data, raw = _raw_bytes(array)
        return cls(data, raw, content_sha256 or sha256(raw), dtype, list(data.shape))

    def chunk_count(self, chunk_bytes: int) -> int:
        return (len(self.raw) + chunk_bytes - 1) // chunk_bytes


_CHUNK_ROW_HEAD = struct.Struct("!hiii")  # field count (3), int4 length (4), chunk_index, chunk_data length


def chunk_rows(copy: psycopg.Copy) -> Iterator[tuple[int, memoryview, memoryview]]:
    """(chunk_index, chunk_data, chunk_sha256) of each row of a binary `COPY (select chunk_index,
    chunk_data, chunk_sha256 ...) TO STDOUT`, the bytes as views into the received message (no copy).

    psycopg's `rows()` copies every bytea field once more and builds Python objects per field, and a
    generic field loop costs more than the 8 KB it moves. The format is PostgreSQL's documented binary
    COPY layout: a header before the first row, then per row an int16 field count and per field an
    int32 length and the bytes (none of these three is ever NULL); an int16 -1 ends the data. The server
    sends each row in its own message.
    """
    header_pending = True
    while message := copy.read():
        view = memoryview(message)
        if header_pending:
            if bytes(view[:11]) != _COPY_SIGNATURE:
                raise TensorIntegrityError("unexpected COPY stream: no binary header")
            view = view[19 + _INT4.unpack_from(view, 15)[0]:]
            header_pending = False
        while len(view) > 2:  # two bytes alone are the trailer; read() still has to drain the end of the COPY
            fields, _, index, length = _CHUNK_ROW_HEAD.unpack_from(view)
            end = 14 + length
            digest_length = _INT4.unpack_from(view, end)[0]
            if fields != 3 or length < 0 or digest_length < 0:
                raise TensorIntegrityError("unexpected COPY stream: not a tensor_data row")
            yield index, view[14:end], view[end + 4:end + 4 + digest_length]
            view = view[end + 4 + digest_length:]
