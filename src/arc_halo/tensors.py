"""Tensor store: numpy arrays in tensor_metadata + tensor_data (chunked bytea) or at an external URI.

A tensor's metadata and chunks are written in one transaction, so a failed or killed upload leaves
nothing visible. Reads stream chunks straight into one preallocated array. Every chunk carries its
SHA-256 and the tensor its whole-content SHA-256: a read verifies the whole (one pass over the bytes)
and, when that fails, checks the chunks to name the bad one.

External tensors (the seed's blob-storage note for very large models) keep only metadata here: URI,
size and SHA-256. Their bytes go through a `BlobStore`; `FileStore` serves `file://`, and an object
store plugs in with `register_store(scheme, store)`.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

import numpy as np
import psycopg

from arc_halo import bulk
from arc_halo.dtypes import dtype_name, numpy_dtype
from arc_halo.errors import IntegrityError, InvalidInputError, NotFoundError

# Chosen by benchmarks/bench_tensor_store.py (figures in its docstring): TOAST splits any larger value
# into ~2 KB rows with an index entry each, so writes cost the same per byte from 64 KiB to 8 MiB and
# reads are fastest around 1 MiB, where per-row overhead in the client has vanished.
DEFAULT_CHUNK_BYTES = 1024 * 1024


class TensorIntegrityError(IntegrityError):
    """Stored bytes do not match their checksum, dtype or shape, or chunks are missing or surplus."""


@dataclass(frozen=True)
class TensorInfo:
    tensor_id: uuid.UUID
    tensor_name: str
    shape: tuple[int, ...]
    dtype: str
    byte_size: int
    content_sha256: str
    storage_kind: str
    external_uri: str | None
    chunk_size_bytes: int | None
    chunk_count: int | None
    layout_sha256: str | None = None

    def describe(self) -> str:
        return f"tensor {self.tensor_id} ({self.tensor_name})"


class BlobStore(Protocol):
    """Where external tensor bytes live (the seam for object storage: S3, GCS, Azure)."""

    def write(self, data: memoryview) -> str:
        """Store `data` as a new object; return its URI once the bytes are durable and complete."""

    def read_into(self, uri: str, target: memoryview) -> int:
        """Fill `target` from `uri`; return the number of bytes the object holds."""


class FileStore:
    """`file://` objects under a root directory: written to a temporary name, fsynced, then renamed, so a
    file at a final name is always whole. The tensor store verifies the SHA-256 on every read."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()

    def write(self, data: memoryview) -> str:
        name = uuid.uuid4().hex
        path = self.root / name[:2] / f"{name}.tensor"
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path.as_uri()

    def read_into(self, uri: str, target: memoryview) -> int:
        return _read_file_into(_file_path(uri), target)


def _file_path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise InvalidInputError(f"not a local file URI: {uri}")
    return Path(unquote(parsed.path))


def _read_file_into(path: Path, target: memoryview) -> int:
    with open(path, "rb", buffering=0) as source:
        filled = 0
        while filled < len(target):
            count = source.readinto(target[filled:])
            if not count:
                return filled
            filled += count
        return filled + len(source.read(1))  # one byte more means the file is longer than recorded


_READERS: dict[str, BlobStore] = {"file": FileStore("/")}  # reads any file:// URI, whatever root wrote it


def register_store(scheme: str, store: BlobStore) -> None:
    """Make tensors at `scheme://` URIs readable (e.g. an S3 or GCS client wrapped as a BlobStore)."""
    _READERS[scheme] = store


def _reader_for(uri: str):
    scheme = urlparse(uri).scheme
    if scheme not in _READERS and scheme in ("s3", "gs", "az"):
        from arc_halo import objectstore  # obstore loads only when an object-store tensor is read

        objectstore.register_readers()
    try:
        return _READERS[scheme]
    except KeyError:
        raise InvalidInputError(
            f"no blob store for {scheme}:// URIs; register one with arc_halo.tensors.register_store({scheme!r}, store)"
        ) from None


def _raw_bytes(array: np.ndarray) -> tuple[np.ndarray, memoryview]:
    """C-contiguous little-endian copy (only when needed) and a flat byte view of it."""
    data = np.ascontiguousarray(array).reshape(np.shape(array))  # ascontiguousarray makes 0-d arrays 1-d
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("<"))
    return data, memoryview(data.reshape(-1).view(np.uint8))


def _sha256(data: memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def layout_digest(dtype: str, shape: tuple[int, ...] | list[int], content_sha256: str) -> str:
    """The SHA-256 binding a tensor's dtype and shape to its content digest: a read recomputes it from the
    metadata row, so an edit of the dtype or the shape is detected even when the byte size stays the same."""
    return hashlib.sha256(f"{dtype}|{','.join(str(int(n)) for n in shape)}|{content_sha256}".encode()).hexdigest()


def content_digest(array: np.ndarray) -> str:
    """The SHA-256 `put` records as content_sha256 for `array` (its little-endian C-order bytes)."""
    return _sha256(_raw_bytes(array)[1])


def put(
    conn: psycopg.Connection,
    array: np.ndarray,
    name: str,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    store: BlobStore | None = None,
    content_sha256: str | None = None,
) -> uuid.UUID:
    """Store `array` (in tensor_data, or in `store` when given); returns its tensor_id.

    Atomic: inside the caller's transaction, or its own. Tensors up to `chunk_bytes` are one chunk.
    `content_sha256` is `content_digest(array)` when the caller has already computed it (model import
    hashes every tensor for the model's content hash), so the bytes are not hashed twice.

    Content-addressed: when this tenant already stores a tensor with the same bytes, dtype and shape
    (and storage kind), its id is returned and nothing is written. Never across tenants: finding
    another tenant's tensor would tell the caller that tenant holds those bytes.
    """
    if chunk_bytes <= 0:
        raise InvalidInputError("chunk_bytes must be positive")
    data, raw = _raw_bytes(array)
    total = len(raw)
    chunk_count = (total + chunk_bytes - 1) // chunk_bytes
    if content_sha256 is None:
        content_sha256 = _sha256(raw)
    shape, dtype, kind = list(data.shape), dtype_name(data.dtype), "external" if store else "chunked"
    with conn.transaction():
        stored = conn.execute(
            f"""select tensor_id from tensor_metadata
                where content_sha256 = %s and dtype = %s and shape = %s::bigint[] and storage_kind = %s
                  and tenant_id = {CURRENT_TENANT}
                limit 1""",
            (content_sha256, dtype, shape, kind),
        ).fetchone()
        if stored:
            return stored[0]
        uri = store.write(raw) if store else None
        # External tensors have a URI and no chunks; chunked ones have chunk columns and no URI.
        storage = (kind, uri, None, None) if store else (kind, None, chunk_bytes, chunk_count)
        tensor_id = conn.execute(
            """insert into tensor_metadata (tensor_name, shape, dtype, element_count, byte_size, content_sha256,
                                            layout_sha256, storage_kind, external_uri, chunk_size_bytes, chunk_count)
               values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) returning tensor_id""",
            (name, shape, dtype, data.size, total, content_sha256, layout_digest(dtype, data.shape, content_sha256),
             *storage),
        ).fetchone()[0]
        if store is None and chunk_count:
            with bulk.copy_into(conn, "tensor_data", ("tensor_id", "chunk_index", "chunk_data", "chunk_sha256"),
                                ("uuid", "int4", "bytea", "text"), wide_rows=True) as copy:
                for index in range(chunk_count):
                    chunk = raw[index * chunk_bytes:(index + 1) * chunk_bytes]
                    copy.write_row((tensor_id, index, chunk, _sha256(chunk)))
    return tensor_id


# The tenant a new row gets by default (the tenant_id columns' default expression).
CURRENT_TENANT = "coalesce(nullif(current_setting('app.tenant_id', true), ''), 'default')"

# A model named by id or by name (its newest registration); two parameters, both the model.
MODEL_BY_ID_OR_NAME = """(select model_id from models where model_id::text = %s or model_name = %s
                         order by created_at desc limit 1)"""

_INFO_COLUMNS = """tensor_metadata.tensor_id, tensor_name, shape, dtype, byte_size, content_sha256, storage_kind,
                   external_uri, chunk_size_bytes, chunk_count, layout_sha256"""


def _info(row) -> TensorInfo:
    return TensorInfo(row[0], row[1], tuple(row[2]), *row[3:])


def info(conn: psycopg.Connection, tensor_id: uuid.UUID | str) -> TensorInfo:
    row = conn.execute(f"select {_INFO_COLUMNS} from tensor_metadata where tensor_id = %s", (tensor_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no tensor {tensor_id}")
    return _info(row)


def parameter_info(conn: psycopg.Connection, model: uuid.UUID | str, parameter_name: str) -> TensorInfo:
    """The tensor of a model's parameter; `model` is a model id or a model name (its newest version)."""
    row = conn.execute(
        f"""select {_INFO_COLUMNS}
            from model_weights
            join tensor_metadata on tensor_metadata.tensor_id = model_weights.tensor_id
            where model_weights.parameter_name = %s and model_weights.model_id = {MODEL_BY_ID_OR_NAME}""",
        (parameter_name, str(model), str(model)),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"model {model} has no parameter {parameter_name!r}")
    return _info(row)


def get(conn: psycopg.Connection, tensor_id: uuid.UUID | str) -> np.ndarray:
    """The stored array, verified against its SHA-256."""
    return _read(conn, info(conn, tensor_id))


def get_parameter(conn: psycopg.Connection, model: uuid.UUID | str, parameter_name: str) -> np.ndarray:
    """A model's parameter by name, e.g. get_parameter(conn, "all-MiniLM-L6-v2", "pooler.dense.weight")."""
    return _read(conn, parameter_info(conn, model, parameter_name))


_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_INT4, _INT2 = struct.Struct("!i"), struct.Struct("!h")


def _binary_copy_rows(copy) -> Iterator[list[memoryview]]:
    """Fields of each row of a binary COPY TO, as views into the received message (no per-field copy).

    psycopg's `rows()` copies every bytea field once more and builds Python objects per field; at 1 MiB
    chunks that halved read speed. The format is PostgreSQL's documented binary COPY layout: a header
    before the first row, then per row an int16 field count and per field an int32 length (-1: NULL)
    and the bytes; an int16 -1 ends the data.
    """
    header_pending = True
    while message := copy.read():
        view = memoryview(message)
        if header_pending:
            if bytes(view[:11]) != _COPY_SIGNATURE:
                raise TensorIntegrityError("unexpected COPY stream: no binary header")
            view = view[19 + _INT4.unpack_from(view, 15)[0]:]
            header_pending = False
        while len(view):
            field_count = _INT2.unpack_from(view)[0]
            if field_count == -1:  # the trailer; read() still has to drain the end of the COPY
                break
            offset, fields = 2, []
            for _ in range(field_count):
                length = _INT4.unpack_from(view, offset)[0]
                offset += 4
                fields.append(view[offset:offset + max(length, 0)])
                offset += max(length, 0)
            yield fields
            view = view[offset:]


def _check_layout(meta: TensorInfo) -> None:
    """dtype and shape as written: tensors written before layout_sha256 existed (null) are checked by the
    table's size constraints only."""
    if meta.layout_sha256 is not None and layout_digest(meta.dtype, meta.shape, meta.content_sha256) != meta.layout_sha256:
        raise TensorIntegrityError(f"{meta.describe()}: dtype {meta.dtype} or shape {list(meta.shape)} is not what "
                                   f"was written (layout checksum mismatch)")


def _read(conn: psycopg.Connection, meta: TensorInfo) -> np.ndarray:
    _check_layout(meta)
    out = np.empty(meta.shape, dtype=numpy_dtype(meta.dtype))
    target = memoryview(out.reshape(-1).view(np.uint8))
    if meta.storage_kind == "external":
        try:
            present = _reader_for(meta.external_uri).read_into(meta.external_uri, target)
        except FileNotFoundError:
            raise TensorIntegrityError(f"{meta.describe()}: {meta.external_uri} is missing") from None
        if present != meta.byte_size:
            raise TensorIntegrityError(
                f"{meta.describe()}: {meta.external_uri} holds {present} bytes, {meta.byte_size} expected"
            )
        if _sha256(target) != meta.content_sha256:
            raise TensorIntegrityError(f"{meta.describe()}: {meta.external_uri} content checksum mismatch")
        return out
    whole = hashlib.sha256()
    chunk_digests: list[str] = []
    offset = 0
    # hashlib releases the GIL on large buffers: the digest runs on a worker thread beside the receiving.
    with ThreadPoolExecutor(max_workers=1) as hasher, conn.cursor().copy(
        "copy (select chunk_index, chunk_data, chunk_sha256 from tensor_data where tensor_id = %s"
        " order by chunk_index) to stdout (format binary)", (meta.tensor_id,),
    ) as copy:
        for index_field, chunk, digest_field in _binary_copy_rows(copy):
            index, digest = _INT4.unpack(index_field)[0], bytes(digest_field).decode()
            if index >= meta.chunk_count:
                raise TensorIntegrityError(f"{meta.describe()}: surplus chunk {index} (the tensor has "
                                           f"{meta.chunk_count} chunk{'s' if meta.chunk_count != 1 else ''})")
            if index != len(chunk_digests):
                raise TensorIntegrityError(f"{meta.describe()}: chunk {len(chunk_digests)} is missing")
            end = offset + len(chunk)
            if end > meta.byte_size:
                raise TensorIntegrityError(f"{meta.describe()}: chunk {index} overruns the tensor")
            target[offset:end] = chunk
            hashing = hasher.submit(whole.update, target[offset:end])
            chunk_digests.append(digest)
            offset = end
        if chunk_digests:
            hashing.result()
    if len(chunk_digests) < (meta.chunk_count or 0):
        raise TensorIntegrityError(f"{meta.describe()}: chunk {len(chunk_digests)} is missing")
    if offset != meta.byte_size:
        raise TensorIntegrityError(f"{meta.describe()}: {offset} of {meta.byte_size} bytes present")
    if whole.hexdigest() != meta.content_sha256:
        # Name the culprit: the first chunk whose bytes no longer match the digest stored beside them.
        size = meta.chunk_size_bytes
        for index, digest in enumerate(chunk_digests):
            if _sha256(target[index * size:(index + 1) * size]) != digest:
                raise TensorIntegrityError(f"{meta.describe()}: chunk {index} is corrupted")
        raise TensorIntegrityError(f"{meta.describe()}: content checksum mismatch (every chunk matches its own digest)")
    return out
