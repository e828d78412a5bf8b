"""Cognitive fusion from application code: reactors, their models, operations, interaction edges, status."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from arc_halo.errors import InvalidInputError, NotFoundError, public_call
from arc_halo.rows import one_value
from arc_halo.tenancy import CURRENT_TENANT
from arc_halo.validation import (as_uuid, json_object, metric_name, numeric_array, optional_time, real_number,
                                 storable_text, uuids)


@public_call
def create_reactor(conn: psycopg.Connection, name: str, strategy: str, config: dict[str, Any] | None = None,
                   status: str = "inactive") -> uuid.UUID:
    config_json = json_object("config", config)
    with conn.transaction():
        reactor_id: uuid.UUID = one_value(conn.execute(
            "insert into cognitive_fusion_reactors (reactor_name, fusion_strategy, status, config)"
            " values (%s, %s, %s, %s) returning reactor_id", (name, strategy, status, config_json)))
        return reactor_id


@public_call
def attach_model(conn: psycopg.Connection, reactor_id: uuid.UUID | str, model_id: uuid.UUID | str, weight: float,
                 role: str = "expert", priority: int = 0) -> uuid.UUID:
    """Map a model into a reactor. A weighted_average reactor's active weights may not add up past 1."""
    reactor_id, model_id = as_uuid("reactor id", reactor_id), as_uuid("model id", model_id)
    if not 0 <= real_number("weight", weight) <= 1:
        raise InvalidInputError(f"weight {weight} must be within [0, 1]")
    with conn.transaction():
        # Lock the reactor row first, so two attaches cannot both pass the weight check.
        found = conn.execute("select fusion_strategy from cognitive_fusion_reactors where reactor_id = %s"
                             f" and tenant_id = {CURRENT_TENANT} for update",
                             (reactor_id,)).fetchone()
        if found is None:
            raise NotFoundError(f"no reactor {reactor_id}")
        strategy = found[0]
        total = one_value(conn.execute("select coalesce(sum(weight), 0) from reactor_models where reactor_id = %s"
                                       f" and is_active and tenant_id = {CURRENT_TENANT}", (reactor_id,)))
        if strategy == "weighted_average" and total + weight > 1 + 1e-9:
            raise InvalidInputError(f"weights of a weighted_average reactor would sum to {total + weight:.3f} (> 1)")
        reactor_model_id: uuid.UUID = one_value(conn.execute(
            "insert into reactor_models (reactor_id, model_id, weight, role, priority) values (%s, %s, %s, %s, %s)"
            " returning reactor_model_id", (reactor_id, model_id, weight, role, priority)))
        return reactor_model_id


@public_call
def record_operation(conn: psycopg.Connection, reactor_id: uuid.UUID | str, contributing_model_ids: Sequence[uuid.UUID | str],
                     status: str = "completed", latency_ms: float | None = None, input_reference: str | None = None,
                     output_summary: dict[str, Any] | None = None, at: datetime | None = None) -> uuid.UUID:
    """One fusion operation. Without `at` it is recorded as it ends (started and, when completed or failed,
    completed now); with `at` it started then and completed `latency_ms` later."""
    reactor_id, models = as_uuid("reactor id", reactor_id), uuids("contributing_model_ids", contributing_model_ids)
    summary = json_object("output_summary", output_summary)
    latency = None if latency_ms is None else real_number("latency_ms", latency_ms)
    at = optional_time("at", at)
    with conn.transaction():
        fusion_operation_id: uuid.UUID = one_value(conn.execute(
            """insert into fusion_operations (reactor_id, input_reference, status, latency_ms, contributing_model_ids,
                                              output_summary, started_at, completed_at)
               values (%(reactor)s, %(reference)s, %(status)s::text, %(latency)s::float8, %(models)s, %(summary)s,
                       coalesce(%(at)s::timestamptz, now()),
                       case when %(status)s::text in ('completed', 'failed')
                            then case when %(at)s::timestamptz is null then now()
                                      else %(at)s::timestamptz
                                           + coalesce(%(latency)s::float8, 0) * interval '1 millisecond' end end)
               returning fusion_operation_id""",
            {"reactor": reactor_id, "reference": input_reference, "status": status, "latency": latency,
             "models": models, "summary": summary, "at": at}))
        return fusion_operation_id


@public_call
def record_metric(conn: psycopg.Connection, reactor_id: uuid.UUID | str, name: str, value: float,
                  at: datetime | None = None) -> None:
    """A reactor metric (throughput_ops, fusion_latency_ms, ...) measured `at` (default now)."""
    reactor_id, value, at = as_uuid("reactor id", reactor_id), real_number("value", value), optional_time("at", at)
    with conn.transaction():
        conn.execute("insert into reactor_metrics (reactor_id, metric_name, value, recorded_at)"
                     " values (%s, %s, %s, coalesce(%s, now()))", (reactor_id, metric_name(name), value, at))


@public_call
def set_state(conn: psycopg.Connection, reactor_id: uuid.UUID | str, key: str, state: dict[str, Any],
              state_vector: object = None, confidence: float | None = None) -> uuid.UUID:
    """A piece of the reactor's cognitive state under `key`, with an optional embedding of it."""
    reactor_id, state_json = as_uuid("reactor id", reactor_id), json_object("state", state)
    vector = None if state_vector is None else "[" + ",".join(
        repr(real_number("state_vector value", x)) for x in numeric_array("state_vector", state_vector).ravel()) + "]"
    confidence = None if confidence is None else real_number("confidence", confidence)
    with conn.transaction():
        cognitive_state_id: uuid.UUID = one_value(conn.execute(
            "insert into cognitive_state (reactor_id, state_key, state, state_vector, confidence)"
            " values (%s, %s, %s, %s, %s) returning cognitive_state_id",
            (reactor_id, storable_text("key", key), state_json, vector, confidence)))
        return cognitive_state_id


@public_call
def add_edge(conn: psycopg.Connection, reactor_id: uuid.UUID | str, source_model_id: uuid.UUID | str,
             target_model_id: uuid.UUID | str, interaction_type: str, strength: float = 1.0) -> uuid.UUID:
    reactor_id = as_uuid("reactor id", reactor_id)
    source_model_id, target_model_id = as_uuid("source model id", source_model_id), as_uuid("target model id", target_model_id)
    with conn.transaction():
        interaction_id: uuid.UUID = one_value(conn.execute(
            """insert into model_interaction_graph (reactor_id, source_model_id, target_model_id, interaction_type, strength)
               values (%s, %s, %s, %s, %s) returning interaction_id""",
            (reactor_id, source_model_id, target_model_id, interaction_type, strength)))
        return interaction_id


@public_call
def status(conn: psycopg.Connection, reactor_id: uuid.UUID | str) -> dict[str, Any]:
    reactor_id = as_uuid("reactor id", reactor_id)
    cursor = conn.execute(f"select * from v_reactor_status where reactor_id = %s and tenant_id = {CURRENT_TENANT}", (reactor_id,))
    row = cursor.fetchone()
    if row is None:
        raise NotFoundError(f"no reactor {reactor_id}")
    if cursor.description is None:
        raise AssertionError("unreachable: a SELECT describes its columns")
    return dict(zip([c.name for c in cursor.description], row))
