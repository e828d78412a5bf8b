"""Issue 3: bad rows are rejected by the database, and the error names the constraint. One test per rule."""

from __future__ import annotations

import hashlib
import uuid

import psycopg
import pytest

from rows import insert_everything, insert_model, insert_tensor


def rejects(conn: psycopg.Connection, error: type[Exception], constraint: str, statement: str, params=()) -> None:
    """The statement fails with `error`, the message names `constraint`, and nothing is left behind."""
    conn.execute("savepoint rule")
    with pytest.raises(error) as caught:
        conn.execute(statement, params)
    conn.execute("rollback to savepoint rule")
    assert constraint in str(caught.value), str(caught.value)
    assert caught.value.diag.constraint_name == constraint


def test_orphan_foreign_key(db) -> None:
    rejects(db, psycopg.errors.ForeignKeyViolation, "transformer_layers_model_id_fkey",
            "insert into transformer_layers (model_id, layer_index, hidden_size) values (%s, 0, 8)", (uuid.uuid4(),))


def test_non_positive_size(db) -> None:
    rejects(db, psycopg.errors.CheckViolation, "models_vocab_size_check",
            """insert into models (model_name, architecture, vocab_size, hidden_size, num_layers, num_attention_heads,
                                   intermediate_size, max_sequence_length)
               values ('bad', 'decoder_only', 0, 8, 1, 2, 32, 64)""")


def test_hidden_size_not_divisible_by_heads(db) -> None:
    rejects(db, psycopg.errors.CheckViolation, "models_hidden_size_heads_check",
            """insert into models (model_name, architecture, vocab_size, hidden_size, num_layers, num_attention_heads,
                                   intermediate_size, max_sequence_length)
               values ('bad', 'decoder_only', 16, 10, 1, 3, 32, 64)""")


def test_unknown_dtype(db) -> None:
    rejects(db, psycopg.errors.ForeignKeyViolation, "tensor_metadata_dtype_fkey",
            """insert into tensor_metadata (tensor_name, shape, dtype, element_count, byte_size, content_sha256,
                                            chunk_size_bytes, chunk_count)
               values ('t', '{2}', 'float13', 2, 8, %s, 8, 1)""", (hashlib.sha256(b"").hexdigest(),))


def test_byte_size_must_match_shape_and_dtype(db) -> None:
    rejects(db, psycopg.errors.CheckViolation, "tensor_metadata_byte_size_check",
            """insert into tensor_metadata (tensor_name, shape, dtype, element_count, byte_size, content_sha256,
                                            chunk_size_bytes, chunk_count)
               values ('t', '{2,3}', 'float16', 6, 24, %s, 1024, 1)""", (hashlib.sha256(b"").hexdigest(),))


def test_element_count_must_match_shape(db) -> None:
    rejects(db, psycopg.errors.CheckViolation, "tensor_metadata_element_count_check",
            """insert into tensor_metadata (tensor_name, shape, dtype, element_count, byte_size, content_sha256,
                                            chunk_size_bytes, chunk_count)
               values ('t', '{2,3}', 'float32', 5, 20, %s, 1024, 1)""", (hashlib.sha256(b"").hexdigest(),))


def test_scalar_and_empty_tensors_are_valid(db) -> None:
    insert_tensor(db, shape=(), data=bytes(4))
    insert_tensor(db, shape=(0, 3), data=b"")


def test_duplicate_chunk_index(db) -> None:
    tensor_id = insert_tensor(db)
    digest = hashlib.sha256(b"x").hexdigest()
    rejects(db, psycopg.errors.UniqueViolation, "tensor_data_pkey",
            "insert into tensor_data (tensor_id, chunk_index, chunk_data, chunk_sha256) values (%s, 0, 'x', %s)",
            (tensor_id, digest))


def test_vector_of_wrong_width_for_its_model(db) -> None:
    model_id = insert_model(db, "width-8", hidden=8)
    rejects(db, psycopg.errors.ForeignKeyViolation, "embeddings_model_width_fkey",
            "insert into embeddings (model_id, embedding_type, embedding_index, dimensions, embedding)"
            " values (%s, 'token', 0, 3, '[1,2,3]')", (model_id,))
    rejects(db, psycopg.errors.CheckViolation, "embeddings_vector_width_check",
            "insert into embeddings (model_id, embedding_type, embedding_index, dimensions, embedding)"
            " values (%s, 'token', 0, 8, '[1,2,3]')", (model_id,))


def test_reactor_weight_outside_unit_interval(db) -> None:
    ids = insert_everything(db)
    model_id = insert_model(db, "third")
    rejects(db, psycopg.errors.CheckViolation, "reactor_models_weight_check",
            "insert into reactor_models (reactor_id, model_id, weight) values (%s, %s, 1.5)", (ids["reactor"], model_id))


def test_self_loop_in_interaction_graph(db) -> None:
    ids = insert_everything(db)
    rejects(db, psycopg.errors.CheckViolation, "model_interaction_graph_no_self_loop_check",
            """insert into model_interaction_graph (reactor_id, source_model_id, target_model_id, interaction_type)
               values (%s, %s, %s, 'feeds')""", (ids["reactor"], ids["model"], ids["model"]))


@pytest.mark.parametrize(
    ("table", "constraint", "statement"),
    [
        ("models", "models_status_check", "update models set status = 'exploded'"),
        ("training_sessions", "training_sessions_status_check", "update training_sessions set status = 'sleeping'"),
        ("inference_sessions", "inference_sessions_status_check", "update inference_sessions set status = 'done'"),
        ("cognitive_fusion_reactors", "cognitive_fusion_reactors_status_check",
         "update cognitive_fusion_reactors set status = 'critical'"),
        ("fusion_operations", "fusion_operations_status_check", "update fusion_operations set status = 'lost'"),
    ],
)
def test_unknown_status_values(db, table, constraint, statement) -> None:
    insert_everything(db)
    rejects(db, psycopg.errors.CheckViolation, constraint, statement)


def test_one_best_checkpoint_per_session(db) -> None:
    ids = insert_everything(db)
    db.execute("update model_checkpoints set is_best = true")
    rejects(db, psycopg.errors.UniqueViolation, "model_checkpoints_one_best_per_session",
            "insert into model_checkpoints (model_id, training_session_id, step, is_best) values (%s, %s, 2, true)",
            (ids["model"], ids["session"]))


def test_tenant_defaults_from_session_setting(db) -> None:
    db.execute("set local app.tenant_id = 'acme'")
    model_id = insert_model(db, "tenant-model")
    assert db.execute("select tenant_id from models where model_id = %s", (model_id,)).fetchone()[0] == "acme"


def test_updated_at_is_maintained(db) -> None:
    model_id = insert_model(db, "touch")
    db.execute("update models set updated_at = now() - interval '1 day', created_at = now() - interval '1 day'")
    db.execute("update models set description = 'changed' where model_id = %s", (model_id,))
    created, updated = db.execute("select created_at, updated_at from models where model_id = %s", (model_id,)).fetchone()
    assert updated > created
