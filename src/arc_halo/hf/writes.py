"""The import's rows: models, transformer_layers, attention_heads, model_weights and embeddings."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import numpy as np
import psycopg

from arc_halo import bulk, embeddings
from arc_halo.hf.config import ModelShape
from arc_halo.hf.source import ModelSource
from arc_halo.tenancy import CURRENT_TENANT

# Columns and binary wire types of the bulk-copied tables (the sample load writes them the same way).
HEAD_COLUMNS = ("layer_id", "head_index", "head_dim", "attention_type", "kv_head_index")
HEAD_TYPES = ("uuid", "int4", "int4", "text", "int4")


@dataclass(frozen=True)
class ImportResult:
    model_id: uuid.UUID
    created: bool
    tensor_count: int
    parameter_count: int
    embedding_count: int
    model_name: str = ""


def lock_content(conn: psycopg.Connection, digest: str) -> None:
    """Serialize this tenant's imports of the same content until the transaction ends. The key holds the
    tenant: a lock shared across tenants would let one tenant learn (by waiting) what another imports."""
    conn.execute(f"select pg_advisory_xact_lock(hashtextextended({CURRENT_TENANT} || '|' || %s, 0))", (digest,))


def model_with_content(conn: psycopg.Connection, digest: str) -> uuid.UUID | None:
    row = conn.execute(
        f"select model_id from models where content_sha256 = %s and tenant_id = {CURRENT_TENANT}", (digest,),
    ).fetchone()
    return row[0] if row else None


def registered_version(conn: psycopg.Connection, name: str) -> str | None:
    """The version under which `name` is registered for this tenant (names are unique per tenant)."""
    row = conn.execute(
        f"select version from models where model_name = %s and tenant_id = {CURRENT_TENANT}", (name,),
    ).fetchone()
    return row[0] if row else None


def insert_model(conn, source: ModelSource, shape: ModelShape, name: str, version: str, digest: str) -> uuid.UUID:
    return conn.execute(
        """insert into models (model_name, version, architecture, model_type, vocab_size, hidden_size, num_layers,
                               num_attention_heads, num_key_value_heads, intermediate_size, max_sequence_length,
                               config, status, content_sha256, description, safetensors_metadata)
           values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'ready', %s, %s, %s) returning model_id""",
        (name, version, shape.architecture, shape.model_type, shape.vocab_size, shape.hidden_size, shape.num_layers,
         shape.heads, shape.kv_heads, shape.intermediate_size, shape.max_sequence_length, json.dumps(source.config),
         digest, f"Imported from {source.directory.resolve()}", json.dumps(source.safetensors_metadata())),
    ).fetchone()[0]


def insert_layers(conn, model_id: uuid.UUID, shape: ModelShape) -> dict[int, uuid.UUID]:
    layer_ids = {}
    group = shape.heads // shape.kv_heads if shape.kv_heads else None
    for index in range(shape.num_layers):
        layer_ids[index] = conn.execute(
            """insert into transformer_layers (model_id, layer_index, layer_type, hidden_size, intermediate_size,
                                               num_attention_heads, activation, normalization, dropout, config)
               values (%s, %s, 'transformer_block', %s, %s, %s, %s, %s, %s, %s) returning layer_id""",
            (model_id, index, shape.hidden_size, shape.intermediate_size, shape.heads, shape.activation,
             shape.normalization, shape.dropout, json.dumps({"stack": shape.stack(index)})),
        ).fetchone()[0]
        with bulk.copy_into(conn, "attention_heads", HEAD_COLUMNS, HEAD_TYPES) as copy:
            for head in range(shape.heads):
                copy.write_row((layer_ids[index], head, shape.head_dim, shape.attention_type(index),
                                head // group if group else None))
    return layer_ids


def insert_weight(conn, model_id: uuid.UUID, layer_id: uuid.UUID | None, parameter: str, kind: str,
                  tensor_id: uuid.UUID) -> None:
    conn.execute(
        """insert into model_weights (model_id, layer_id, parameter_name, parameter_kind, tensor_id, requires_grad)
           values (%s, %s, %s, %s, %s, %s)""",
        (model_id, layer_id, parameter, kind, tensor_id, kind != "buffer"),
    )


def insert_embeddings(conn, model_id: uuid.UUID, tables: dict[str, np.ndarray], vocabulary: list[str | None]) -> None:
    if not tables:
        return
    embeddings.bulk_load(conn, model_id, [(kind, table, vocabulary if kind == "token" else None)
                                          for kind, table in tables.items()])


def summary(conn, model_id: uuid.UUID, created: bool) -> ImportResult:
    tensor_count, parameter_count = conn.execute(
        f"""select count(*), coalesce(sum(tensor_metadata.element_count) filter (where parameter_kind <> 'buffer'), 0)
           from model_weights join tensor_metadata using (tenant_id, tensor_id)
           where model_id = %s and tenant_id = {CURRENT_TENANT}""", (model_id,),
    ).fetchone()
    embedding_count = conn.execute(f"select count(*) from embeddings where model_id = %s and tenant_id = {CURRENT_TENANT}",
                                   (model_id,)).fetchone()[0]
    name = conn.execute(f"select model_name from models where model_id = %s and tenant_id = {CURRENT_TENANT}",
                        (model_id,)).fetchone()[0]
    return ImportResult(model_id, created, tensor_count, int(parameter_count), embedding_count, name)
