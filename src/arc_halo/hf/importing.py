"""Import a model directory in one transaction: a model with the same content is returned as is."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg

from arc_halo import tensors
from arc_halo.errors import IntegrityError, ModelImportError, public_call
from arc_halo.parallel_upload import DEFAULT_WORKERS, MAX_WORKERS, ParallelUpload
from arc_halo.hf import writes
from arc_halo.hf.agreement import check_against_weights
from arc_halo.hf.config import ModelShape
from arc_halo.hf.hashing import content_hash
from arc_halo.hf.naming import embedding_type, layer_index, parameter_kind
from arc_halo.hf.progress import progress_bar
from arc_halo.hf.source import ModelSource
from arc_halo.hf.tokenizer import vocabulary
from arc_halo.hf.validation import check_registration, constraint_fix, tensor_shapes
from arc_halo.hf.writes import ImportResult
from arc_halo.validation import whole_number

# The tables an import fills: analyzed afterwards, so the first queries use their indexes.
FILLED_TABLES = ("models", "transformer_layers", "attention_heads", "tensor_metadata", "tensor_data", "model_weights",
                 "embeddings")


def _analyze(conn: psycopg.Connection) -> None:
    """Fresh statistics for the filled tables, when the import's transaction is committed (outside a
    caller's transaction). A role that may not analyze a table gets a warning from PostgreSQL, not an error."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return
    with conn.transaction():
        for table in FILLED_TABLES:
            conn.execute(f"analyze {table}")


@contextlib.contextmanager
def _tensor_writer(conn: psycopg.Connection, store: tensors.BlobStore | None,
                   workers: int) -> Iterator[Callable[[np.ndarray, str, str], uuid.UUID]]:
    """put(array, name, content_sha256) -> tensor_id for the import's tensors: chunks over `workers`
    connections (visible when the import commits), or through `conn` alone (external stores, workers=0)."""
    if store is not None or workers == 0:
        yield lambda array, name, digest: tensors.put(conn, array, name, store=store, content_sha256=digest)
        return
    with ParallelUpload(conn, workers) as upload:
        yield upload.put


@public_call
def import_model(
    conn: psycopg.Connection,
    directory: str | Path,
    name: str | None = None,
    version: str = "1.0.0",
    progress: bool = False,
    store: tensors.BlobStore | None = None,
    workers: int = DEFAULT_WORKERS,
) -> ImportResult:
    """Register the model in `directory`; a model with the same content already stored is returned as is.
    Tensor chunks go over `workers` extra connections (0: through `conn` only); everything becomes visible
    at once when the import's transaction commits."""
    whole_number("workers", workers, 0, MAX_WORKERS)
    if store is not None and not callable(getattr(store, "write", None)):
        raise ModelImportError(f"store must be a BlobStore (objectstore.open_store(uri)), got {type(store).__name__}")
    source = ModelSource.open(directory)
    configured = ModelShape.from_config(source.config)
    name = source.default_name() if name is None else name  # an empty name is refused, not replaced
    check_registration(name, version)
    shape = check_against_weights(configured, tensor_shapes(source.shards),
                                  lambda parameter: layer_index(parameter, configured), source.config)
    digests = content_hash(source, progress)
    with conn.transaction():
        writes.lock_content(conn, digests.model_sha256)
        existing = writes.model_with_content(conn, digests.model_sha256)
        if existing:  # the name asked for is not used: the caller is told the registered one
            return writes.summary(conn, existing, created=False)
        clash = writes.registered_version(conn, name)
        if clash:
            raise ModelImportError(
                f"model {name!r} (version {clash}) is already registered with other weights; "
                "import it under another --name"
            )
        try:
            model_id = writes.insert_model(conn, source, shape, name, version, digests.model_sha256)
            layer_ids = writes.insert_layers(conn, model_id, shape)
        except (psycopg.errors.IntegrityError, IntegrityError) as exc:  # the registry's translation, or the raw one
            fix = constraint_fix(exc, shape)
            if fix is None:
                raise
            raise ModelImportError(fix) from None
        embedding_tables: dict[str, np.ndarray] = {}
        with progress_bar(progress, f"importing {name}", source.tensor_bytes()) as advance, \
                _tensor_writer(conn, store, workers) as put_tensor:
            for parameter, array in source.tensors():
                tensor_id = put_tensor(array, parameter, digests.tensor_sha256[parameter])
                index = layer_index(parameter, shape)
                writes.insert_weight(conn, model_id, None if index is None else layer_ids.get(index), parameter,
                                     parameter_kind(parameter, array), tensor_id)
                table = embedding_type(parameter, array, shape)
                if table:
                    embedding_tables.setdefault(table, array)
                advance(array.nbytes)
        writes.insert_embeddings(conn, model_id, embedding_tables, vocabulary(source.directory, shape.vocab_size))
        result = writes.summary(conn, model_id, created=True)
    _analyze(conn)
    return result

