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
import numbers
import os
import re
import struct
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

import numpy as np
import psycopg

from arc_halo import bulk, validation
from arc_halo.dtypes import dtype_name, numpy_dtype
from arc_halo.errors import IntegrityError, InvalidInputError, NotFoundError, public_call

# Chosen by benchmarks/bench_tensor_store.py (figures in its docstring): reads are fastest around 1 MiB,
# where per-row overhead in the client has vanished. Writes cost about the same per byte at any size:
# TOAST splits a larger value into ~2 KB rows. Chunks that fit a page (up to ~8 KB, kept inline with
# toast_tuple_target) were measured too: writes 10% faster, reads a third slower, RLS writes halved.
DEFAULT_CHUNK_BYTES = 1024 * 1024

_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_INT4 = struct.Struct("!i")
_SHA256 = re.compile(r"[0-9a-f]{64}")


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
    external_uri_allowed: bool = True  # under one of the database's external_stores (external_uri_allowed)

    def describe(self) -> str:
        return f"tensor {self.tensor_id} ({self.tensor_name})"


class BlobStore(Protocol):
    """Where external tensor bytes live (the seam for object storage: S3, GCS, Azure). A store that writes
    has a `uri_prefix` (its root URI), which must be one of the database's external_stores."""

    def write(self, data: memoryview) -> str:
        """Store `data` as a new object; return its URI once the bytes are durable and complete."""

    def read_into(self, uri: str, target: memoryview) -> int:
        """Fill `target` from `uri`; return the number of bytes the object holds."""


class FileStore:
    """`file://` objects under a root directory: written to a temporary name, fsynced, then renamed, so a
    file at a final name is always whole. The tensor store verifies the SHA-256 on every read."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = validation.path("root", root).resolve()

    @property
    def uri_prefix(self) -> str:
        return self.root.as_uri().rstrip("/")

    def write(self, data: memoryview) -> str:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidInputError(f"a blob store writes bytes, got {type(data).__name__}")
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
        return _read_file_into(_file_path(uri), validation.writable_buffer("target", target))


def _file_path(uri: str) -> Path:
    parsed = urlparse(validation.text("uri", uri))
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
    if not isinstance(scheme, str) or not scheme.isidentifier() or not callable(getattr(store, "read_into", None)):
        raise InvalidInputError(f"register_store needs a URI scheme such as 's3' and a BlobStore, got {scheme!r}, {store!r}")
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
    if not isinstance(shape, (tuple, list)) or not all(isinstance(n, numbers.Integral) for n in shape):
        raise InvalidInputError(f"shape must be a sequence of whole numbers, got {shape!r}")
    return hashlib.sha256(f"{dtype}|{','.join(str(int(n)) for n in shape)}|{content_sha256}".encode()).hexdigest()


def content_digest(array: np.ndarray) -> str:
    """The SHA-256 `put` records as content_sha256 for `array` (its little-endian C-order bytes)."""
    return _sha256(_raw_bytes(validation.numeric_array("array", array))[1])


CHUNK_COLUMNS = ("tensor_id", "chunk_index", "chunk_data", "chunk_sha256")
CHUNK_TYPES = ("uuid", "int4", "bytea", "text")
# Chunks up to this size go in as pre-encoded binary COPY rows (through a staging table where the
# policies apply); larger ones row by row, as one pipelined INSERT each where the policies apply (staging
# would write their bytes twice; see bulk.copy_into's wide_rows).
SMALL_CHUNK_LIMIT = 64 * 1024
_COPY_TRAILER = b"\xff\xff"
_ROW_HEAD = struct.Struct("!hi16sii")  # field count, then uuid (length 16) and int4 (length 4) fields
_BLOCK_BYTES = 1 << 20


# Chunks of one tensor to write: its id, its bytes, the chunk size and which chunks.
ChunkRange = tuple[uuid.UUID, memoryview, int, range]


def _chunk_blocks(pieces: Sequence[ChunkRange]) -> Iterator[bytes]:
    """Binary COPY data (signature, rows, trailer) of the chunks in `pieces`, in ~1 MiB blocks.

    Encoding the rows here, a block at a time, costs the client a fraction of one `write_row` per 8 KB
    chunk; the layout is PostgreSQL's documented binary COPY format (as in _chunk_rows).
    """
    parts: list = [_COPY_SIGNATURE, b"\x00\x00\x00\x00\x00\x00\x00\x00"]  # flags, header extension length
    size = 0
    for tensor_id, raw, chunk_bytes, indices in pieces:
        key = tensor_id.bytes
        for index in indices:
            chunk = raw[index * chunk_bytes:(index + 1) * chunk_bytes]
            parts += (_ROW_HEAD.pack(4, 16, key, 4, index), _INT4.pack(len(chunk)), chunk,
                      b"\x00\x00\x00\x40", _sha256(chunk).encode())
            size += len(chunk)
            if size >= _BLOCK_BYTES:
                yield b"".join(parts)
                parts, size = [], 0
    parts.append(_COPY_TRAILER)
    yield b"".join(parts)


@public_call
def write_chunks(conn: psycopg.Connection, pieces: Sequence[ChunkRange]) -> None:
    """Insert the chunks in `pieces` into tensor_data, in the connection's transaction (or its own)."""
    if not isinstance(pieces, (list, tuple)) or not all(
            isinstance(piece, tuple) and len(piece) == 4 and isinstance(piece[1], memoryview) and isinstance(piece[3], range)
            and isinstance(piece[2], int) and piece[2] > 0 for piece in pieces):
        raise InvalidInputError("pieces must be a list of (tensor id, memoryview, chunk bytes, range of chunk indexes)")
    if all(chunk_bytes <= SMALL_CHUNK_LIMIT for _, _, chunk_bytes, _ in pieces):
        with bulk.copy_into(conn, "tensor_data", CHUNK_COLUMNS) as copy:
            for block in _chunk_blocks(pieces):
                copy.write(block)
        return
    with bulk.copy_into(conn, "tensor_data", CHUNK_COLUMNS, CHUNK_TYPES, wide_rows=True) as copy:
        for tensor_id, raw, chunk_bytes, indices in pieces:
            for index in indices:
                chunk = raw[index * chunk_bytes:(index + 1) * chunk_bytes]
                copy.write_row((tensor_id, index, chunk, _sha256(chunk)))


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
        return cls(data, raw, content_sha256 or _sha256(raw), dtype, list(data.shape))

    def chunk_count(self, chunk_bytes: int) -> int:
        return (len(self.raw) + chunk_bytes - 1) // chunk_bytes


@public_call
def find_stored(conn: psycopg.Connection, tensor: TensorBytes, kind: str = "chunked") -> uuid.UUID | None:
    """A visible tensor of this tenant with the same bytes, dtype, shape and storage kind (content addressing).
    Never across tenants: finding another tenant's tensor would tell the caller that tenant holds those bytes."""
    if not isinstance(tensor, TensorBytes):
        raise InvalidInputError(f"tensor must be a TensorBytes (TensorBytes.of(array)), got {type(tensor).__name__}")
    row = conn.execute(
        f"""select tensor_id from tensor_metadata
            where content_sha256 = %s and dtype = %s and shape = %s::bigint[] and storage_kind = %s
              and tenant_id = {CURRENT_TENANT} and {VISIBLE}
            limit 1""",
        (tensor.content_sha256, tensor.dtype, tensor.shape, kind),
    ).fetchone()
    return row[0] if row else None


@public_call
def insert_metadata(conn: psycopg.Connection, tensor: TensorBytes, name: str, chunk_bytes: int | None = None,
                    uri: str | None = None, pending_upload_id: uuid.UUID | None = None) -> uuid.UUID:
    """The tensor_metadata row of `tensor`: chunked in `chunk_bytes` chunks, or external at `uri`."""
    if not isinstance(tensor, TensorBytes):
        raise InvalidInputError(f"tensor must be a TensorBytes (TensorBytes.of(array)), got {type(tensor).__name__}")
    if uri is None:
        validation.whole_number("chunk_bytes", chunk_bytes, 1, 2**31 - 1)
    # External tensors have a URI and no chunks; chunked ones have chunk columns and no URI.
    storage = ("external", uri, None, None) if uri else ("chunked", None, chunk_bytes, tensor.chunk_count(chunk_bytes))
    return conn.execute(
        """insert into tensor_metadata (tensor_name, shape, dtype, element_count, byte_size, content_sha256,
                                        layout_sha256, storage_kind, external_uri, chunk_size_bytes, chunk_count,
                                        pending_upload_id)
           values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) returning tensor_id""",
        (name, tensor.shape, tensor.dtype, tensor.data.size, len(tensor.raw), tensor.content_sha256,
         layout_digest(tensor.dtype, tensor.shape, tensor.content_sha256), *storage, pending_upload_id),
    ).fetchone()[0]


@public_call
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
    hashes every tensor for the model's content hash), so the bytes are not hashed twice. Over several
    connections at once: `arc_halo.parallel_upload.ParallelUpload`.

    Content-addressed: when this tenant already stores a tensor with the same bytes, dtype and shape
    (and storage kind), its id is returned and nothing is written (see `find_stored`).
    """
    validation.whole_number("chunk_bytes", chunk_bytes, 1, 2**31 - 1)
    if store is not None and not callable(getattr(store, "write", None)):
        raise InvalidInputError(f"store must be a BlobStore (objectstore.open_store(uri)), got {type(store).__name__}")
    tensor = TensorBytes.of(array, content_sha256)
    with conn.transaction():
        stored = find_stored(conn, tensor, "external" if store else "chunked")
        if stored:
            return stored
        if store:
            require_configured_store(conn, store)
            return insert_metadata(conn, tensor, name, uri=store.write(tensor.raw))
        tensor_id = insert_metadata(conn, tensor, name, chunk_bytes)
        write_chunks(conn, [(tensor_id, tensor.raw, chunk_bytes, range(tensor.chunk_count(chunk_bytes)))])
    return tensor_id


STORE_NOT_CONFIGURED = ("is not under a store this database is configured to use (external_stores); the schema "
                        "owner registers a store (insert into external_stores (uri_prefix) values ('s3://bucket/prefix')) "
                        "or writes a tensor to it once through the library")


@public_call
def require_configured_store(conn: psycopg.Connection, store: BlobStore) -> None:
    """Refuse a write to a store the database is not configured to use, before any byte is written; a login
    that may change external_stores (the schema owner) registers the store instead."""
    prefix = getattr(store, "uri_prefix", None)
    if not prefix:
        raise InvalidInputError(f"{type(store).__name__} has no uri_prefix, so its objects {STORE_NOT_CONFIGURED}")
    configured = conn.execute("select exists (select from external_stores where starts_with(%s, uri_prefix || '/'))",
                              (prefix + "/",)).fetchone()[0]
    if configured:
        return
    if conn.execute("select has_table_privilege('external_stores', 'INSERT')").fetchone()[0]:
        try:
            with conn.transaction():
                conn.execute("insert into external_stores (uri_prefix) values (%s) on conflict do nothing", (prefix,))
            return
        except psycopg.errors.CheckViolation:
            raise InvalidInputError(f"{prefix} cannot be a store: use a plain absolute directory or bucket prefix "
                                    "(no '..', '//', '%', '?', '#' or '@')") from None
    raise InvalidInputError(f"{prefix} {STORE_NOT_CONFIGURED}")


# The tenant a new row gets by default (the tenant_id columns' default expression).
CURRENT_TENANT = "coalesce(nullif(current_setting('app.tenant_id', true), ''), 'default')"

# A tensor row readers may see: not part of a parallel upload still in flight (arc_halo.parallel_upload).
VISIBLE = "tensor_metadata.pending_upload_id is null"

# A model of this tenant named by id or by name (its newest registration); two parameters, both the model.
# Every lookup by id or name filters by the transaction's tenant itself, so it holds for the owner and
# with row-level security off too.
MODEL_BY_ID_OR_NAME = f"""(select model_id from models where (model_id::text = %s or model_name = %s)
                          and tenant_id = {CURRENT_TENANT} order by created_at desc limit 1)"""

_INFO_COLUMNS = """tensor_metadata.tensor_id, tensor_name, shape, dtype, byte_size, content_sha256, storage_kind,
                   external_uri, chunk_size_bytes, chunk_count, layout_sha256,
                   external_uri is null or external_uri_allowed(external_uri)"""


def _info(row) -> TensorInfo:
    return TensorInfo(row[0], row[1], tuple(row[2]), *row[3:])


@public_call
def info(conn: psycopg.Connection, tensor_id: uuid.UUID | str) -> TensorInfo:
    tensor_id = validation.as_uuid("tensor id", tensor_id)
    row = conn.execute(f"select {_INFO_COLUMNS} from tensor_metadata where tensor_id = %s and {VISIBLE}"
                       f" and tenant_id = {CURRENT_TENANT}", (tensor_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no tensor {tensor_id}")
    return _info(row)


@public_call
def parameter_info(conn: psycopg.Connection, model: uuid.UUID | str, parameter_name: str) -> TensorInfo:
    """The tensor of a model's parameter; `model` is a model id or a model name (its newest version)."""
    row = conn.execute(
        f"""select {_INFO_COLUMNS}
            from model_weights
            join tensor_metadata on tensor_metadata.tensor_id = model_weights.tensor_id
            where model_weights.parameter_name = %s and model_weights.model_id = {MODEL_BY_ID_OR_NAME}
              and model_weights.tenant_id = {CURRENT_TENANT} and tensor_metadata.tenant_id = {CURRENT_TENANT}
              and {VISIBLE}""",
        (parameter_name, str(model), str(model)),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"model {model} has no parameter {parameter_name!r}")
    return _info(row)


@public_call
def get(conn: psycopg.Connection, tensor_id: uuid.UUID | str) -> np.ndarray:
    """The stored array, verified against its SHA-256."""
    return _read(conn, info(conn, tensor_id))


@public_call
def get_parameter(conn: psycopg.Connection, model: uuid.UUID | str, parameter_name: str) -> np.ndarray:
    """A model's parameter by name, e.g. get_parameter(conn, "all-MiniLM-L6-v2", "pooler.dense.weight")."""
    return _read(conn, parameter_info(conn, model, parameter_name))


_CHUNK_ROW_HEAD = struct.Struct("!hiii")  # field count (3), int4 length (4), chunk_index, chunk_data length


def _chunk_rows(copy) -> Iterator[tuple[int, memoryview, memoryview]]:
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
        if not meta.external_uri_allowed:
            # Refused before the target is touched: the same words whether or not it exists.
            raise TensorIntegrityError(f"{meta.describe()}: its external_uri {STORE_NOT_CONFIGURED}; nothing was read")
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
    _read_chunks(conn, meta, target)
    return out


def _read_chunks(conn: psycopg.Connection, meta: TensorInfo, target: memoryview) -> None:
    """Fill `target` from tensor_data. Every chunk but the last has chunk_size_bytes, so each goes straight
    to its place and the rows need no ORDER BY (which made PostgreSQL walk the index chunk by chunk: half
    the speed for 8 KB chunks). The whole-content digest follows the contiguous filled prefix on a worker
    thread (hashlib releases the GIL on large buffers)."""
    count, size = meta.chunk_count or 0, meta.chunk_size_bytes or 0
    digests: list[str | None] = [None] * count
    whole, hashed, filled, hashing = hashlib.sha256(), 0, 0, None  # hashed/filled: chunks, from 0
    with ThreadPoolExecutor(max_workers=1) as hasher, conn.cursor().copy(
        "copy (select chunk_index, chunk_data, chunk_sha256 from tensor_data where tensor_id = %s"
        f" and tenant_id = {CURRENT_TENANT}) to stdout (format binary)", (meta.tensor_id,),
    ) as copy:
        for index, chunk, digest_field in _chunk_rows(copy):
            if not 0 <= index < count or digests[index] is not None:
                raise TensorIntegrityError(f"{meta.describe()}: surplus chunk {index} (the tensor has "
                                           f"{count} chunk{'s' if count != 1 else ''})")
            start = index * size
            if len(chunk) != min(size, meta.byte_size - start):
                raise TensorIntegrityError(f"{meta.describe()}: chunk {index} holds {len(chunk)} bytes, "
                                           f"{min(size, meta.byte_size - start)} expected")
            target[start:start + len(chunk)] = chunk
            digests[index] = bytes(digest_field).decode()
            while filled < count and digests[filled] is not None:
                filled += 1
            if (filled - hashed) * size >= _BLOCK_BYTES or filled == count > hashed:
                if hashing is not None:
                    hashing.result()
                hashing = hasher.submit(whole.update, target[hashed * size:min(filled * size, meta.byte_size)])
                hashed = filled
        if hashing is not None:
            hashing.result()
    if filled < count:
        raise TensorIntegrityError(f"{meta.describe()}: chunk {filled} is missing")
    if whole.hexdigest() != meta.content_sha256:
        # Name the culprit: the first chunk whose bytes no longer match the digest stored beside them.
        for index, digest in enumerate(digests):
            if _sha256(target[index * size:(index + 1) * size]) != digest:
                raise TensorIntegrityError(f"{meta.describe()}: chunk {index} is corrupted")
        raise TensorIntegrityError(f"{meta.describe()}: content checksum mismatch (every chunk matches its own digest)")
