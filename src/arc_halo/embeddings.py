"""Bulk loading a model's embeddings into its own partition of `embeddings`.

The rows go by binary COPY into a table no reader can see; its HNSW and btree indexes are built once
the rows are there and the table is attached as the model's partition, all in the caller's
transaction (begin_embedding_load / finish_embedding_load in
macros/schema_helpers/embedding_partitions.sql). Nothing is visible until the transaction commits, and
a killed load leaves nothing behind. The table has an opaque name and takes rows only from the login that
began the load, of its own tenant and model (a policy); the attach refuses any other row.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from arc_halo import bulk
from arc_halo.errors import InvalidInputError, public_call
from arc_halo.validation import as_uuid, numeric_array

# Columns and binary wire types of a bulk load.
COLUMNS = ("model_id", "embedding_type", "embedding_index", "token_text", "dimensions", "embedding")
TYPES = ("uuid", "text", "int4", "text", "int4", "vector")


@public_call
def bulk_load(conn: psycopg.Connection, model_id: uuid.UUID,
              tables: Iterable[tuple[str, np.ndarray, list[str | None] | None]]) -> int:
    """Load (embedding_type, rows x width array, token texts or None) tables of a model that has no
    embeddings yet; returns the number of rows loaded."""
    model_id = as_uuid("model id", model_id)
    tables = list(tables) if isinstance(tables, Iterable) and not isinstance(tables, (str, bytes)) else None
    if tables is None or not all(isinstance(table, tuple) and len(table) == 3 for table in tables):
        raise InvalidInputError("tables must be a list of (embedding_type, rows x width array, token texts or None)")
    register_vector(conn)  # the binary COPY below needs the vector type's adapter, whoever opened conn
    with conn.transaction():
        partition = conn.execute("select begin_embedding_load(%s)", (model_id,)).fetchone()[0]
        with bulk.copy_into(conn, partition, COLUMNS, TYPES) as copy:
            for embedding_type, table, texts in tables:
                values = numeric_array(f"{embedding_type} embeddings", table).astype(np.float32, copy=False)
                if values.ndim != 2:
                    raise InvalidInputError(f"{embedding_type} embeddings must be rows x width, got shape {values.shape}")
                width = values.shape[1]
                for index, row in enumerate(values):
                    text = texts[index] if texts is not None and index < len(texts) else None
                    copy.write_row((model_id, embedding_type, index, text, width, row))
        return conn.execute("select finish_embedding_load(%s)", (model_id,)).fetchone()[0]
