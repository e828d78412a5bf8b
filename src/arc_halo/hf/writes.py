"""The import's rows: models, transformer_layers, attention_heads, model_weights (through arc_halo.registry,
the public write API) and embeddings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from arc_halo import embeddings, registry
from arc_halo.errors import NotFoundError
from arc_halo.hf.config import ModelShape
from arc_halo.hf.source import ModelSource
from arc_halo.rows import one_row, one_value
from arc_halo.tenancy import CURRENT_TENANT

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


def insert_model(conn: psycopg.Connection[Any], source: ModelSource, shape: ModelShape, name: str, version: str,
                 digest: str) -> uuid.UUID:
    return registry.register_model(
        conn, name, version=version, architecture=shape.architecture, model_type=shape.model_type,
        vocab_size=shape.vocab_size, hidden_size=shape.hidden_size, num_layers=shape.num_layers,
        num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads, intermediate_size=shape.intermediate_size,
        max_sequence_length=shape.max_sequence_length, config=source.config, status="ready", content_sha256=digest,
        description=f"Imported from {source.directory.resolve()}", safetensors_metadata=source.safetensors_metadata())


def insert_layers(conn: psycopg.Connection[Any], model_id: uuid.UUID, shape: ModelShape) -> dict[int, uuid.UUID]:
    group = shape.heads // shape.kv_heads if shape.kv_heads else None
    return {index: registry.add_layer(
        conn, model_id, index, hidden_size=shape.hidden_size, intermediate_size=shape.intermediate_size,
        num_attention_heads=shape.heads, head_dim=shape.head_dim, attention_type=shape.attention_type(index),
        kv_group_size=group, activation=shape.activation, normalization=shape.normalization, dropout=shape.dropout,
        config={"stack": shape.stack(index)}) for index in range(shape.num_layers)}


def insert_weight(conn: psycopg.Connection[Any], model_id: uuid.UUID, layer_id: uuid.UUID | None, parameter: str,
                  kind: str, tensor_id: uuid.UUID) -> None:
    registry.add_weight(conn, model_id, parameter, kind, tensor_id, layer_id=layer_id, requires_grad=kind != "buffer")


def insert_embeddings(conn: psycopg.Connection[Any], model_id: uuid.UUID, tables: dict[str, np.ndarray],
                      vocabulary: list[str | None]) -> None:
    if not tables:
        return
    embeddings.bulk_load(conn, model_id, [(kind, table, vocabulary if kind == "token" else None)
                                          for kind, table in tables.items()])


def summary(conn: psycopg.Connection[Any], model_id: uuid.UUID, created: bool) -> ImportResult:
    tensor_count, parameter_count = one_row(conn.execute(
        f"""select count(*), coalesce(sum(tensor_metadata.element_count) filter (where parameter_kind <> 'buffer'), 0)
           from model_weights join tensor_metadata using (tenant_id, tensor_id)
           where model_id = %s and tenant_id = {CURRENT_TENANT}""", (model_id,),
    ))
    embedding_count = one_value(conn.execute(
        f"select count(*) from embeddings where model_id = %s and tenant_id = {CURRENT_TENANT}", (model_id,)))
    name_row = conn.execute(f"select model_name from models where model_id = %s and tenant_id = {CURRENT_TENANT}",
                            (model_id,)).fetchone()
    if name_row is None:
        raise NotFoundError(f"no model {model_id} for this tenant")
    name = name_row[0]
    return ImportResult(model_id, created, tensor_count, int(parameter_count), embedding_count, name)
