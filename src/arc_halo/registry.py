"""The model registry's public write API: models, their layers with attention heads, their weights, and
gradient-checkpointing plans. The importer (arc_halo.hf), the sample data and the benchmarks write these
rows through here, so every writer takes the same path (the transaction's tenant, the checks, the
constraint names in errors). Times default to the server's `now()`; `at=` backdates a row, as
`MetricLogger.log` does for metrics.

Each call runs in the caller's transaction, or its own: a model and its layers and weights written in
one `with conn.transaction():` appear together or not at all.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from arc_halo import bulk
from arc_halo.errors import InvalidInputError, NotFoundError, public_call
from arc_halo.rows import one_value
from arc_halo.tenancy import CURRENT_TENANT
from arc_halo.validation import (as_uuid, boolean, json_object, optional_time, optional_uuid, optional_whole_number,
                                 storable_text, whole_number)

MAX_INT = 2**31 - 1


def _optional_text(label: str, value: object) -> str | None:
    return None if value is None else storable_text(label, value)


# Columns and binary wire types of attention_heads, written in bulk.
HEAD_COLUMNS = ("layer_id", "head_index", "head_dim", "attention_type", "kv_head_index")
HEAD_TYPES = ("uuid", "int4", "int4", "text", "int4")


@public_call
def register_model(
    conn: psycopg.Connection, name: str, *, architecture: str, vocab_size: int, hidden_size: int, num_layers: int,
    num_attention_heads: int, intermediate_size: int, max_sequence_length: int, version: str = "1.0.0",
    model_type: str | None = None, num_key_value_heads: int | None = None, config: dict[str, Any] | None = None,
    status: str = "ready", description: str | None = None, content_sha256: str | None = None,
    safetensors_metadata: dict[str, Any] | None = None, at: datetime | None = None,
) -> uuid.UUID:
    """Register a model of the transaction's tenant; returns its id. The shape must be consistent (the
    table's checks, e.g. hidden_size a multiple of the head count, name what is wrong)."""
    name, version = storable_text("name", name), storable_text("version", version)
    sizes = [whole_number(label, value, 1, MAX_INT) for label, value in (
        ("vocab_size", vocab_size), ("hidden_size", hidden_size), ("num_layers", num_layers),
        ("num_attention_heads", num_attention_heads), ("intermediate_size", intermediate_size),
        ("max_sequence_length", max_sequence_length))]
    kv_heads = optional_whole_number("num_key_value_heads", num_key_value_heads, 1, MAX_INT)
    architecture, status = storable_text("architecture", architecture), storable_text("status", status)
    model_type, description = _optional_text("model_type", model_type), _optional_text("description", description)
    content_sha256 = _optional_text("content_sha256", content_sha256)
    config_json = json_object("config", config)
    metadata_json = None if safetensors_metadata is None else json_object("safetensors_metadata", safetensors_metadata)
    model_id: uuid.UUID = one_value(conn.execute(
        """insert into models (model_name, version, architecture, model_type, vocab_size, hidden_size, num_layers,
                               num_attention_heads, num_key_value_heads, intermediate_size, max_sequence_length,
                               config, status, content_sha256, description, safetensors_metadata, created_at)
           values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()))
           returning model_id""",
        (name, version, architecture, model_type, *sizes[:4], kv_heads, *sizes[4:], config_json, status,
         content_sha256, description, metadata_json, optional_time("at", at)),
    ))
    return model_id


@public_call
def set_model_status(conn: psycopg.Connection, model_id: uuid.UUID | str, status: str) -> None:
    """Move a model along draft -> training -> ready -> deployed -> archived (models_status_check)."""
    model_id = as_uuid("model id", model_id)
    if conn.execute(f"update models set status = %s where model_id = %s and tenant_id = {CURRENT_TENANT}",
                    (storable_text("status", status), model_id)).rowcount == 0:
        raise NotFoundError(f"no model {model_id}; `arc-halo model list` shows what is registered")


@public_call
def add_layer(
    conn: psycopg.Connection, model_id: uuid.UUID | str, layer_index: int, *, hidden_size: int,
    intermediate_size: int | None = None, num_attention_heads: int | None = None, head_dim: int | None = None,
    attention_type: str = "self", kv_group_size: int | None = None, layer_type: str = "transformer_block",
    activation: str | None = None, normalization: str | None = None, dropout: float | None = None,
    config: dict[str, Any] | None = None,
) -> uuid.UUID:
    """A layer of the model and, with `num_attention_heads`, its attention_heads rows (each `head_dim`
    wide, default hidden_size / heads; with `kv_group_size`, head h shares key/value head h // size).
    Returns the layer's id."""
    model_id = as_uuid("model id", model_id)
    layer_index = whole_number("layer_index", layer_index, 0, MAX_INT)
    hidden_size = whole_number("hidden_size", hidden_size, 1, MAX_INT)
    intermediate_size = optional_whole_number("intermediate_size", intermediate_size, 1, MAX_INT)
    heads = optional_whole_number("num_attention_heads", num_attention_heads, 1, MAX_INT)
    head_dim = optional_whole_number("head_dim", head_dim, 1, MAX_INT)
    group = optional_whole_number("kv_group_size", kv_group_size, 1, MAX_INT)
    if dropout is not None and (isinstance(dropout, bool) or not isinstance(dropout, (int, float))):
        raise InvalidInputError(f"dropout must be a number, got {dropout!r}")
    layer_type, attention_type = storable_text("layer_type", layer_type), storable_text("attention_type", attention_type)
    activation, normalization = _optional_text("activation", activation), _optional_text("normalization", normalization)
    config_json = json_object("config", config)
    layer_id: uuid.UUID = one_value(conn.execute(
        """insert into transformer_layers (model_id, layer_index, layer_type, hidden_size, intermediate_size,
                                           num_attention_heads, activation, normalization, dropout, config)
           values (%s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s::float8, 0), %s) returning layer_id""",
        (model_id, layer_index, layer_type, hidden_size, intermediate_size, heads, activation, normalization,
         dropout, config_json),
    ))
    if heads:
        width = head_dim or hidden_size // heads
        with bulk.copy_into(conn, "attention_heads", HEAD_COLUMNS, HEAD_TYPES) as copy:
            for head in range(heads):
                copy.write_row((layer_id, head, width, attention_type, head // group if group else None))
    return layer_id


@public_call
def add_weight(conn: psycopg.Connection, model_id: uuid.UUID | str, parameter_name: str, kind: str,
               tensor_id: uuid.UUID | str, layer_id: uuid.UUID | str | None = None,
               requires_grad: bool = True) -> uuid.UUID:
    """A model parameter stored as tensor `tensor_id` (arc_halo.tensors.put); returns its weight id."""
    weight_id: uuid.UUID = one_value(conn.execute(
        """insert into model_weights (model_id, layer_id, parameter_name, parameter_kind, tensor_id, requires_grad)
           values (%s, %s, %s, %s, %s, %s) returning weight_id""",
        (as_uuid("model id", model_id), optional_uuid("layer id", layer_id), storable_text("parameter_name", parameter_name),
         storable_text("kind", kind), as_uuid("tensor id", tensor_id), boolean("requires_grad", requires_grad)),
    ))
    return weight_id


@public_call
def plan_gradient_checkpointing(conn: psycopg.Connection, model_id: uuid.UUID | str, strategy: str,
                                segment_count: int, expected_memory_saving_ratio: float | None = None) -> uuid.UUID:
    """Record how the model is to be trained with gradient checkpointing (gradient_checkpoints)."""
    if expected_memory_saving_ratio is not None and (
            isinstance(expected_memory_saving_ratio, bool) or not isinstance(expected_memory_saving_ratio, (int, float))):
        raise InvalidInputError(f"expected_memory_saving_ratio must be a number, got {expected_memory_saving_ratio!r}")
    gradient_checkpoint_id: uuid.UUID = one_value(conn.execute(
        """insert into gradient_checkpoints (model_id, strategy, segment_count, expected_memory_saving_ratio)
           values (%s, %s, %s, %s) returning gradient_checkpoint_id""",
        (as_uuid("model id", model_id), storable_text("strategy", strategy), whole_number("segment_count", segment_count, 1, MAX_INT),
         expected_memory_saving_ratio),
    ))
    return gradient_checkpoint_id


@dataclass(frozen=True)
class ModelSummary:
    model_id: uuid.UUID
    model_name: str
    version: str
    architecture: str
    num_layers: int
    num_attention_heads: int
    status: str


@public_call
def list_models(conn: psycopg.Connection) -> list[ModelSummary]:
    """Every model the connection may see, by name and version: all of them for the schema owner (the
    operator's `arc-halo model list`), its tenant's with row-level security on."""
    rows = conn.execute("""select model_id, model_name, version, architecture, num_layers, num_attention_heads, status
                           from models order by model_name, version""").fetchall()
    return [ModelSummary(*row) for row in rows]

