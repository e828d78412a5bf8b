"""Delete a stored model and everything that is its, in one transaction.

Its layers, heads, weights, embeddings, checkpoints and interactions go through their foreign keys
(ON DELETE CASCADE); its training and inference sessions (with their metrics, caches, patterns and
optimizer state) and its reactor memberships are deleted first, since those keys do not cascade from
a model. Tensors are content-addressed per tenant and may be shared: a tensor is deleted only when
this deletion removed its last reference (every foreign key to tensor_metadata, and the checkpoints'
weight_tensors maps). Objects of external tensors stay where they are: `arc-halo storage orphans`
lists them. It acts within what the connection sees, so with row-level security on, one tenant.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg
from psycopg import sql

from arc_halo.errors import InvalidInputError, NotFoundError, public_call

# Every column that references a tensor: the foreign keys to tensor_metadata, found in the catalog so a
# new one is never missed, plus the checkpoints' jsonb map of tensor ids (no foreign key can hold those).
_TENSOR_REFERENCES = """
    select format('%I.%I', n.nspname, r.relname), a.attname
    from pg_constraint as c
    join pg_class as r on r.oid = c.conrelid
    join pg_namespace as n on n.oid = r.relnamespace
    join pg_attribute as a on a.attrelid = c.conrelid and a.attnum = any(c.conkey)
    where c.contype = 'f' and c.confrelid = 'tensor_metadata'::regclass and a.attname <> 'tenant_id'
      and not r.relispartition and r.relname <> 'tensor_data'  -- a tensor's own chunks are not a use of it
"""


@dataclass(frozen=True)
class DeletedModel:
    model_id: uuid.UUID
    model_name: str
    tensors_deleted: int
    external_tensors_deleted: int


def _referenced_tensors(conn: psycopg.Connection) -> set[uuid.UUID]:
    parts: list[sql.Composable] = [sql.SQL("select {} from {} where {} is not null").format(
                                      sql.Identifier(column), sql.SQL(table), sql.Identifier(column))
                                  for table, column in conn.execute(_TENSOR_REFERENCES).fetchall()]
    parts.append(sql.SQL("select value::uuid from model_checkpoints, jsonb_each_text(weight_tensors)"
                         " where jsonb_typeof(weight_tensors) = 'object'"
                         " and value ~ '^[0-9a-fA-F-]{36}$'"))
    return {row[0] for row in conn.execute(sql.SQL(" union ").join(parts)).fetchall()}


@public_call
def delete_model(conn: psycopg.Connection, model: uuid.UUID | str) -> DeletedModel:
    """Delete `model` (id or name) and everything that is its, in one transaction; NotFoundError when
    nothing is named so, InvalidInputError when a name names models of several tenants."""
    if not str(model).strip():
        raise InvalidInputError("name the model to delete (its name or id)")
    with conn.transaction():
        found = conn.execute("select model_id, model_name from models where model_id::text = %s or model_name = %s"
                             " for update", (str(model), str(model))).fetchall()
        if not found:
            raise NotFoundError(f"no model {model!r}: `arc-halo model list` shows what is registered; nothing deleted")
        if len(found) > 1:
            raise InvalidInputError(f"{model!r} names {len(found)} models (one per tenant): give the model id, or act "
                                    "as one tenant; nothing deleted")
        model_id, model_name = found[0]
        before = _referenced_tensors(conn)
        conn.execute("delete from inference_sessions where model_id = %s", (model_id,))
        conn.execute("delete from training_sessions where model_id = %s", (model_id,))
        conn.execute("delete from reactor_models where model_id = %s", (model_id,))
        conn.execute("delete from models where model_id = %s", (model_id,))
        unreferenced = list(before - _referenced_tensors(conn))
        gone = conn.execute("delete from tensor_metadata where tensor_id = any(%s) returning storage_kind",
                            (unreferenced,)).fetchall()
    return DeletedModel(model_id, model_name, len(gone), sum(1 for (kind,) in gone if kind == "external"))
