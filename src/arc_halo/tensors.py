"""Tensor store: numpy arrays in tensor_metadata + tensor_data (chunked bytea) or at an external URI.

A tensor's metadata and chunks are written in one transaction, so a failed or killed upload leaves
nothing visible. Reads stream chunks straight into one preallocated array. Every chunk carries its
SHA-256 and the tensor its whole-content SHA-256: a read verifies the whole (one pass over the bytes)
and, when that fails, checks the chunks to name the bad one.

External tensors (the seed's blob-storage note for very large models) keep only metadata here: URI,
size and SHA-256. Their bytes go through a `BlobStore` (arc_halo.blobstores: `FileStore` serves
`file://`, arc_halo.objectstore s3://, gs:// and az://, another scheme plugs in with `register_store`).
The bytes' encoding and the binary COPY codec are arc_halo.tensor_codec; this module moves them.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import psycopg

from arc_halo import bulk, validation
from arc_halo.blobstores import STORE_NOT_CONFIGURED, BlobStore, reader_for, register_store, require_configured_store
from arc_halo.dtypes import numpy_dtype
from arc_halo.errors import InvalidInputError, NotFoundError, TensorIntegrityError, public_call
from arc_halo.filestore import FileStore
from arc_halo.lookups import MODEL_BY_ID_OR_NAME, VISIBLE
from arc_halo.rows import one_value
from arc_halo.tenancy import CURRENT_TENANT
from arc_halo.tensor_codec import (BLOCK_BYTES, CHUNK_COLUMNS, CHUNK_TYPES, SMALL_CHUNK_LIMIT, ChunkRange, TensorBytes,
                                   chunk_blocks, chunk_rows, content_digest, layout_digest, sha256)

# The names callers have always found here (arc_halo.tensors is the tensor store's public face).
__all__ = ["DEFAULT_CHUNK_BYTES", "BlobStore", "FileStore", "TensorBytes", "TensorInfo", "TensorIntegrityError",
           "content_digest", "find_stored", "get", "get_parameter", "info", "insert_metadata", "layout_digest", "parameter_info",
           "put", "register_store", "require_configured_store", "write_chunks"]

# Chosen by benchmarks/bench_tensor_store.py (figures in its docstring): reads are fastest around 1 MiB,
# where per-row overhead in the client has vanished. Writes cost about the same per byte at any size:
# TOAST splits a larger value into ~2 KB rows. Chunks that fit a page (up to ~8 KB, kept inline with
# toast_tuple_target) were measured too: writes 10% faster, reads a third slower, RLS writes halved.
DEFAULT_CHUNK_BYTES = 1024 * 1024

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


@public_call
def write_chunks(conn: psycopg.Connection, pieces: Sequence[ChunkRange]) -> None:
    """Insert the chunks in `pieces` into tensor_data, in the connection's transaction (or its own)."""
    if not isinstance(pieces, (list, tuple)) or not all(
            isinstance(piece, tuple) and len(piece) == 4 and isinstance(piece[1], memoryview) and isinstance(piece[3], range)
            and isinstance(piece[2], int) and piece[2] > 0 for piece in pieces):
        raise InvalidInputError("pieces must be a list of (tensor id, memoryview, chunk bytes, range of chunk indexes)")
    if all(chunk_bytes <= SMALL_CHUNK_LIMIT for _, _, chunk_bytes, _ in pieces):
        with bulk.copy_into(conn, "tensor_data", CHUNK_COLUMNS) as writer:
            binary_copy = cast(psycopg.Copy, writer)  # without wide_rows, copy_into's writer is psycopg's Copy
            for block in chunk_blocks(pieces):
                binary_copy.write(block)
        return
    with bulk.copy_into(conn, "tensor_data", CHUNK_COLUMNS, CHUNK_TYPES, wide_rows=True) as copy:
        for tensor_id, raw, chunk_bytes, indices in pieces:
            for index in indices:
                chunk = raw[index * chunk_bytes:(index + 1) * chunk_bytes]
                copy.write_row((tensor_id, index, chunk, sha256(chunk)))


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
    # External tensors have a URI and no chunks; chunked ones have chunk columns and no URI.
    storage: tuple[str, str | None, int | None, int | None]
    if uri:
        storage = ("external", uri, None, None)
    else:
        chunk_size = validation.whole_number("chunk_bytes", chunk_bytes, 1, 2**31 - 1)
        storage = ("chunked", None, chunk_size, tensor.chunk_count(chunk_size))
    tensor_id: uuid.UUID = one_value(conn.execute(
        """insert into tensor_metadata (tensor_name, shape, dtype, element_count, byte_size, content_sha256,
                                        layout_sha256, storage_kind, external_uri, chunk_size_bytes, chunk_count,
                                        pending_upload_id)
           values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) returning tensor_id""",
        (name, tensor.shape, tensor.dtype, tensor.data.size, len(tensor.raw), tensor.content_sha256,
         layout_digest(tensor.dtype, tensor.shape, tensor.content_sha256), *storage, pending_upload_id),
    ))
    return tensor_id


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


_INFO_COLUMNS = """tensor_metadata.tensor_id, tensor_name, shape, dtype, byte_size, content_sha256, storage_kind,
                   external_uri, chunk_size_bytes, chunk_count, layout_sha256,
                   external_uri is null or external_uri_allowed(external_uri)"""


def _info(row: tuple[Any, ...]) -> TensorInfo:
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


def _check_layout(meta: TensorInfo) -> None:
    """dtype and shape as written: tensors written before layout_sha256 existed (null) are checked by the
    table's size constraints only."""
    if meta.layout_sha256 is not None and layout_digest(meta.dtype, meta.shape, meta.content_sha256) != meta.layout_sha256:
        raise TensorIntegrityError(f"{meta.describe()}: dtype {meta.dtype} or shape {list(meta.shape)} is not what "
                                   f"was written (layout checksum mismatch)")


def _read(conn: psycopg.Connection, meta: TensorInfo) -> np.ndarray:
    _check_layout(meta)
    out = np.empty(meta.shape, dtype=numpy_dtype(meta.dtype))
    target = out.reshape(-1).view(np.uint8).data
    if meta.storage_kind == "external":
        if not meta.external_uri_allowed:
            # Refused before the target is touched: the same words whether or not it exists.
            raise TensorIntegrityError(f"{meta.describe()}: its external_uri {STORE_NOT_CONFIGURED}; nothing was read")
        if meta.external_uri is None:  # the table's checks give every external tensor a URI
            raise TensorIntegrityError(f"{meta.describe()}: stored as external but has no external_uri")
        try:
            present = reader_for(meta.external_uri).read_into(meta.external_uri, target)
        except FileNotFoundError:
            raise TensorIntegrityError(f"{meta.describe()}: {meta.external_uri} is missing") from None
        if present != meta.byte_size:
            raise TensorIntegrityError(
                f"{meta.describe()}: {meta.external_uri} holds {present} bytes, {meta.byte_size} expected"
            )
        if sha256(target) != meta.content_sha256:
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
        for index, chunk, digest_field in chunk_rows(copy):
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
            if (filled - hashed) * size >= BLOCK_BYTES or filled == count > hashed:
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
            if sha256(target[index * size:(index + 1) * size]) != digest:
                raise TensorIntegrityError(f"{meta.describe()}: chunk {index} is corrupted")
        raise TensorIntegrityError(f"{meta.describe()}: content checksum mismatch (every chunk matches its own digest)")
