"""Cognitive fusion from application code: reactors, their models, operations, interaction edges, status."""

from __future__ import annotations

import uuid

import psycopg

from arc_halo.errors import InvalidInputError, NotFoundError, public_call
from arc_halo.tenancy import CURRENT_TENANT
from arc_halo.validation import as_uuid, json_object, real_number, uuids


@public_call
def create_reactor(conn: psycopg.Connection, name: str, strategy: str, config: dict | None = None,
                   status: str = "inactive") -> uuid.UUID:
    config = json_object("config", config)
    with conn.transaction():
        return conn.execute(
            "insert into cognitive_fusion_reactors (reactor_name, fusion_strategy, status, config)"
            " values (%s, %s, %s, %s) returning reactor_id", (name, strategy, status, config)).fetchone()[0]


@public_call
def attach_model(conn: psycopg.Connection, reactor_id, model_id, weight: float, role: str = "expert",
                 priority: int = 0) -> uuid.UUID:
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
        total = conn.execute("select coalesce(sum(weight), 0) from reactor_models where reactor_id = %s and is_active"
                             f" and tenant_id = {CURRENT_TENANT}",
                             (reactor_id,)).fetchone()[0]
        if strategy == "weighted_average" and total + weight > 1 + 1e-9:
            raise InvalidInputError(f"weights of a weighted_average reactor would sum to {total + weight:.3f} (> 1)")
        return conn.execute(
            "insert into reactor_models (reactor_id, model_id, weight, role, priority) values (%s, %s, %s, %s, %s)"
            " returning reactor_model_id", (reactor_id, model_id, weight, role, priority)).fetchone()[0]


@public_call
def record_operation(conn: psycopg.Connection, reactor_id, contributing_model_ids: list, status: str = "completed",
                     latency_ms: float | None = None, input_reference: str | None = None,
                     output_summary: dict | None = None) -> uuid.UUID:
    reactor_id, contributing_model_ids = as_uuid("reactor id", reactor_id), uuids("contributing_model_ids",
                                                                                     contributing_model_ids)
    output_summary = json_object("output_summary", output_summary)
    with conn.transaction():
        return conn.execute(
            """insert into fusion_operations (reactor_id, input_reference, status, latency_ms, contributing_model_ids,
                                              output_summary, completed_at)
               values (%s, %s, %s, %s, %s, %s, case when %s in ('completed', 'failed') then now() end)
               returning fusion_operation_id""",
            (reactor_id, input_reference, status, latency_ms, contributing_model_ids, output_summary,
             status)).fetchone()[0]


@public_call
def add_edge(conn: psycopg.Connection, reactor_id, source_model_id, target_model_id, interaction_type: str,
             strength: float = 1.0) -> uuid.UUID:
    reactor_id = as_uuid("reactor id", reactor_id)
    source_model_id, target_model_id = as_uuid("source model id", source_model_id), as_uuid("target model id", target_model_id)
    with conn.transaction():
        return conn.execute(
            """insert into model_interaction_graph (reactor_id, source_model_id, target_model_id, interaction_type, strength)
               values (%s, %s, %s, %s, %s) returning interaction_id""",
            (reactor_id, source_model_id, target_model_id, interaction_type, strength)).fetchone()[0]


@public_call
def status(conn: psycopg.Connection, reactor_id) -> dict:
    reactor_id = as_uuid("reactor id", reactor_id)
    cursor = conn.execute(f"select * from v_reactor_status where reactor_id = %s and tenant_id = {CURRENT_TENANT}", (reactor_id,))
    row = cursor.fetchone()
    if row is None:
        raise NotFoundError(f"no reactor {reactor_id}")
    return dict(zip([c.name for c in cursor.description], row))
