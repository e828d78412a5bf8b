"""A valid row in every operational table, for tests that need data to survive or to violate."""

from __future__ import annotations

import hashlib

import psycopg

SHA = hashlib.sha256(b"arc-halo").hexdigest()
TABLES = (
    "models", "transformer_layers", "attention_heads", "tensor_dtypes", "tensor_metadata", "tensor_data",
    "model_weights", "embeddings", "training_sessions", "training_metrics", "training_metrics_latest",
    "metric_batches", "optimizer_state", "model_checkpoints", "gradient_checkpoints", "inference_sessions",
    "activation_cache", "kv_cache", "inference_metrics", "attention_patterns", "cognitive_fusion_reactors",
    "reactor_models", "fusion_operations", "model_interaction_graph", "cognitive_state", "reactor_metrics",
)


def insert_model(conn: psycopg.Connection, name: str = "test-model", hidden: int = 8, heads: int = 2) -> str:
    return conn.execute(
        """insert into models (model_name, architecture, vocab_size, hidden_size, num_layers,
                               num_attention_heads, intermediate_size, max_sequence_length)
           values (%s, 'decoder_only', 16, %s, 1, %s, 32, 64) returning model_id""",
        (name, hidden, heads),
    ).fetchone()[0]


def insert_tensor(conn: psycopg.Connection, shape=(2, 2), dtype: str = "float32", data: bytes | None = None) -> str:
    elements = 1
    for dim in shape:
        elements *= dim
    data = data if data is not None else bytes(elements * 4)
    tensor_id = conn.execute(
        """insert into tensor_metadata (tensor_name, shape, dtype, element_count, byte_size, content_sha256,
                                        chunk_size_bytes, chunk_count)
           values ('t', %s, %s, %s, %s, %s, 1048576, %s) returning tensor_id""",
        (list(shape), dtype, elements, len(data), hashlib.sha256(data).hexdigest(), 1 if data else 0),
    ).fetchone()[0]
    if data:
        conn.execute(
            "insert into tensor_data (tensor_id, chunk_index, chunk_data, chunk_sha256) values (%s, 0, %s, %s)",
            (tensor_id, data, hashlib.sha256(data).hexdigest()),
        )
    return tensor_id


def insert_everything(conn: psycopg.Connection, suffix: str = "") -> dict[str, str]:
    """One row (or more) in each table; returns the main ids."""
    ids: dict[str, str] = {}
    ids["model"] = insert_model(conn, f"everything{suffix}")
    ids["model2"] = insert_model(conn, f"everything-2{suffix}")
    ids["layer"] = conn.execute(
        "insert into transformer_layers (model_id, layer_index, hidden_size) values (%s, 0, 8) returning layer_id",
        (ids["model"],),
    ).fetchone()[0]
    conn.execute(
        "insert into attention_heads (layer_id, head_index, head_dim) values (%s, 0, 4), (%s, 1, 4)",
        (ids["layer"], ids["layer"]),
    )
    ids["tensor"] = insert_tensor(conn)
    conn.execute(
        "insert into model_weights (model_id, layer_id, parameter_name, tensor_id) values (%s, %s, 'w', %s)",
        (ids["model"], ids["layer"], ids["tensor"]),
    )
    conn.execute(
        "insert into embeddings (model_id, embedding_type, embedding_index, dimensions, embedding)"
        " values (%s, 'token', 0, 8, '[1,2,3,4,5,6,7,8]')",
        (ids["model"],),
    )
    ids["session"] = conn.execute(
        "insert into training_sessions (model_id, session_name, status, started_at, total_steps)"
        " values (%s, 'run', 'running', now(), 100) returning training_session_id",
        (ids["model"],),
    ).fetchone()[0]
    conn.execute(
        "insert into training_metrics (training_session_id, metric_name, step, value) values (%s, 'loss', 1, 2.5)",
        (ids["session"],),
    )
    conn.execute("insert into metric_batches (metric_batch_id, training_session_id, row_count)"
                 " values (gen_random_uuid(), %s, 1)", (ids["session"],))
    ids["checkpoint"] = conn.execute(
        "insert into model_checkpoints (model_id, training_session_id, step) values (%s, %s, 1) returning checkpoint_id",
        (ids["model"], ids["session"]),
    ).fetchone()[0]
    conn.execute(
        """insert into optimizer_state (training_session_id, checkpoint_id, optimizer_type, step, parameter_name,
                                        state_name, tensor_id) values (%s, %s, 'adam', 1, 'w', 'exp_avg', %s)""",
        (ids["session"], ids["checkpoint"], ids["tensor"]),
    )
    conn.execute("insert into gradient_checkpoints (model_id) values (%s)", (ids["model"],))
    ids["inference"] = conn.execute(
        "insert into inference_sessions (model_id) values (%s) returning inference_session_id", (ids["model"],)
    ).fetchone()[0]
    conn.execute(
        """insert into activation_cache (inference_session_id, layer_id, activation_name, position_start,
               position_end, dtype, shape, activation_data, size_bytes)
           values (%s, %s, 'mlp_out', 0, 1, 'float32', '{1}', '\\x00000000', 4)""",
        (ids["inference"], ids["layer"]),
    )
    conn.execute(
        """insert into kv_cache (inference_session_id, layer_id, position_start, position_end, dtype, shape,
               key_data, value_data, size_bytes)
           values (%s, %s, 0, 1, 'float32', '{1}', '\\x00000000', '\\x00000000', 8)""",
        (ids["inference"], ids["layer"]),
    )
    conn.execute(
        "insert into inference_metrics (inference_session_id, metric_name, value) values (%s, 'latency_ms', 12)",
        (ids["inference"],),
    )
    conn.execute(
        """insert into attention_patterns (inference_session_id, layer_id, head_index, query_start, query_end,
               key_start, key_end, weights) values (%s, %s, 0, 0, 1, 0, 2, '{0.25,0.75}')""",
        (ids["inference"], ids["layer"]),
    )
    ids["reactor"] = conn.execute(
        "insert into cognitive_fusion_reactors (reactor_name, fusion_strategy, status)"
        " values (%s, 'weighted_average', 'active') returning reactor_id",
        (f"reactor{suffix}",),
    ).fetchone()[0]
    conn.execute(
        "insert into reactor_models (reactor_id, model_id, weight) values (%s, %s, 0.6), (%s, %s, 0.4)",
        (ids["reactor"], ids["model"], ids["reactor"], ids["model2"]),
    )
    conn.execute(
        "insert into fusion_operations (reactor_id, contributing_model_ids) values (%s, %s)",
        (ids["reactor"], [ids["model"], ids["model2"]]),
    )
    conn.execute(
        """insert into model_interaction_graph (reactor_id, source_model_id, target_model_id, interaction_type)
           values (%s, %s, %s, 'feeds')""",
        (ids["reactor"], ids["model"], ids["model2"]),
    )
    conn.execute("insert into cognitive_state (reactor_id, state_key) values (%s, 'focus')", (ids["reactor"],))
    conn.execute(
        "insert into reactor_metrics (reactor_id, metric_name, value) values (%s, 'throughput_ops', 3)",
        (ids["reactor"],),
    )
    return ids


def row_counts(conn: psycopg.Connection) -> dict[str, int]:
    return {table: conn.execute(f"select count(*) from {table}").fetchone()[0] for table in TABLES}


def table_contents(conn: psycopg.Connection) -> dict[str, tuple[int, str]]:
    """(row count, digest of every row's text in order) for every table in the target schema, found in the
    catalog: a rebuild that rewrites a value while keeping the count changes the digest, and a table added
    later is compared without being listed here."""
    tables = [name for (name,) in conn.execute(
        """select c.relname from pg_class c
           where c.relnamespace = current_schema()::regnamespace and c.relkind in ('r', 'p')
             and not c.relispartition order by 1""")]
    return {table: conn.execute(
        f'select count(*), coalesce(md5(string_agg(t::text, e\'\\n\' order by t::text)), \'\') from "{table}" t'
    ).fetchone() for table in tables}
