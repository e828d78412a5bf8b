"""A sample dataset that makes every example in the seed return meaningful rows.

`gpt-fusion-1` (a small GPT-2-shaped model with real weight tensors), a running training session with
metric history and checkpoints, an inference session with caches and attention patterns, and an
active reactor fusing it with `gpt-fusion-mini`. Loaded in one transaction, and only once: a second
load finds `gpt-fusion-1` and changes nothing.

Written through the library's own write paths (tensors.put, bulk.copy_into, MetricLogger,
inference.record_attention, the fusion API), so it loads as the application role with row-level
security on, for the tenant of the connection. Rows the library has no call for, or whose timestamps
the sample backdates (checkpoints, caches, operations), are plain INSERTs.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from arc_halo import bulk, embeddings, fusion, inference, tenancy, tensors, training
from arc_halo.errors import public_call
from arc_halo.hf import writes as hf_writes

SAMPLE_MODEL = "gpt-fusion-1"
SEED = 2026


@dataclass(frozen=True)
class ModelShape:
    name: str
    hidden: int
    heads: int
    layers: int
    vocab: int
    positions: int

    @property
    def intermediate(self) -> int:
        return 4 * self.hidden


FUSION_1 = ModelShape(SAMPLE_MODEL, hidden=384, heads=6, layers=2, vocab=256, positions=128)
FUSION_MINI = ModelShape("gpt-fusion-mini", hidden=128, heads=4, layers=1, vocab=256, positions=128)


def gpt2_parameters(shape: ModelShape) -> list[tuple[str, int | None, str, tuple[int, ...]]]:
    """(name, layer index or None, kind, tensor shape) for a GPT-2-style model."""
    h, i = shape.hidden, shape.intermediate
    params = [("wte.weight", None, "embedding", (shape.vocab, h)), ("wpe.weight", None, "embedding", (shape.positions, h))]
    for layer in range(shape.layers):
        p = f"h.{layer}."
        params += [
            (p + "ln_1.weight", layer, "norm", (h,)), (p + "ln_1.bias", layer, "norm", (h,)),
            (p + "attn.c_attn.weight", layer, "weight", (h, 3 * h)), (p + "attn.c_attn.bias", layer, "bias", (3 * h,)),
            (p + "attn.c_proj.weight", layer, "weight", (h, h)), (p + "attn.c_proj.bias", layer, "bias", (h,)),
            (p + "ln_2.weight", layer, "norm", (h,)), (p + "ln_2.bias", layer, "norm", (h,)),
            (p + "mlp.c_fc.weight", layer, "weight", (h, i)), (p + "mlp.c_fc.bias", layer, "bias", (i,)),
            (p + "mlp.c_proj.weight", layer, "weight", (i, h)), (p + "mlp.c_proj.bias", layer, "bias", (h,)),
        ]
    return params + [("ln_f.weight", None, "norm", (h,)), ("ln_f.bias", None, "norm", (h,))]


def _register_model(conn: psycopg.Connection, shape: ModelShape, rng: np.random.Generator) -> dict:
    config = {"model_type": "gpt2", "n_embd": shape.hidden, "n_head": shape.heads, "n_layer": shape.layers,
              "vocab_size": shape.vocab, "n_positions": shape.positions, "activation_function": "gelu_new"}
    model_id = conn.execute(
        """insert into models (model_name, version, architecture, model_type, vocab_size, hidden_size, num_layers,
                               num_attention_heads, intermediate_size, max_sequence_length, config, status, description)
           values (%s, '1.0.0', 'decoder_only', 'gpt2', %s, %s, %s, %s, %s, %s, %s, 'training', 'Arc-Halo sample model')
           returning model_id""",
        (shape.name, shape.vocab, shape.hidden, shape.layers, shape.heads, shape.intermediate, shape.positions,
         json.dumps(config)),
    ).fetchone()[0]
    layer_ids = []
    for layer in range(shape.layers):
        layer_id = conn.execute(
            """insert into transformer_layers (model_id, layer_index, layer_type, hidden_size, intermediate_size,
                                               num_attention_heads, activation, normalization, dropout)
               values (%s, %s, 'transformer_block', %s, %s, %s, 'gelu_new', 'layer_norm', 0.1) returning layer_id""",
            (model_id, layer, shape.hidden, shape.intermediate, shape.heads),
        ).fetchone()[0]
        layer_ids.append(layer_id)
        with bulk.copy_into(conn, "attention_heads", hf_writes.HEAD_COLUMNS, hf_writes.HEAD_TYPES) as copy:
            for head in range(shape.heads):
                copy.write_row((layer_id, head, shape.hidden // shape.heads, "causal_self", None))
    weights = {}
    for name, layer, kind, tensor_shape in gpt2_parameters(shape):
        values = (rng.standard_normal(tensor_shape) * 0.02).astype(np.float32)
        if kind == "norm" and name.endswith("weight"):
            values = np.ones(tensor_shape, dtype=np.float32)
        tensor_id = tensors.put(conn, values, name)
        conn.execute(
            """insert into model_weights (model_id, layer_id, parameter_name, parameter_kind, tensor_id, requires_grad)
               values (%s, %s, %s, %s, %s, %s)""",
            (model_id, None if layer is None else layer_ids[layer], name, kind, tensor_id, name != "wpe.weight"),
        )
        weights[name] = (tensor_id, values)
    wte, wpe = weights["wte.weight"][1], weights["wpe.weight"][1]
    embeddings.bulk_load(conn, model_id, [("token", wte, [f"<tok{index}>" for index in range(len(wte))]),
                                          ("position", wpe, None)])
    conn.execute(
        "insert into gradient_checkpoints (model_id, strategy, segment_count, expected_memory_saving_ratio)"
        " values (%s, 'full', %s, 0.6)", (model_id, shape.layers),
    )
    return {"model_id": model_id, "layer_ids": layer_ids, "weights": weights}


def _training(conn: psycopg.Connection, model: dict, rng: np.random.Generator, now: datetime) -> None:
    total_steps, current_step, seconds_per_step = 1000, 420, 6.0
    started = now - timedelta(seconds=current_step * seconds_per_step)
    session_id = conn.execute(
        """insert into training_sessions (model_id, session_name, status, hyperparameters, dataset_name, total_steps,
                                          current_step, total_epochs, current_epoch, started_at, progress_updated_at)
           values (%s, 'gpt-fusion-1-pretrain', 'running', %s, 'arc-halo-corpus-v1', %s, %s, 3, 1, %s, %s)
           returning training_session_id""",
        (model["model_id"], json.dumps({"learning_rate": 3e-4, "batch_size": 32, "warmup_steps": 100,
                                        "optimizer": "adamw", "weight_decay": 0.01}),
         total_steps, current_step, started, now),
    ).fetchone()[0]
    losses = {}
    with training.MetricLogger(conn, session_id, flush_seconds=float("inf")) as logger:
        for step in range(0, current_step + 1, 5):
            at = started + timedelta(seconds=step * seconds_per_step)
            epoch = step * 3 // total_steps
            loss = 2.0 + 3.5 * math.exp(-step / 150) + rng.normal(0, 0.05)
            lr = 3e-4 * min(1.0, step / 100) * 0.5 * (1 + math.cos(math.pi * step / total_steps))
            losses[step] = loss
            for name, value in (("loss", loss), ("learning_rate", lr), ("grad_norm", 1.5 * math.exp(-step / 300) + 0.3),
                                ("accuracy", 0.2 + 0.5 * (1 - math.exp(-step / 200)))):
                logger.log(name, value, step, epoch, at)
    best_step = 400
    for step in (100, 200, 300, 400):
        checkpoint_id = conn.execute(
            """insert into model_checkpoints (model_id, training_session_id, step, epoch, metrics, weight_tensors,
                                              size_bytes, is_best, created_at)
               values (%s, %s, %s, %s, %s, %s, %s, %s, %s) returning checkpoint_id""",
            (model["model_id"], session_id, step, step * 3 // total_steps, json.dumps({"loss": round(losses[step], 4)}),
             json.dumps({name: str(tensor_id) for name, (tensor_id, _) in model["weights"].items()}),
             sum(values.nbytes for _, values in model["weights"].values()), step == best_step,
             started + timedelta(seconds=step * seconds_per_step)),
        ).fetchone()[0]
    for name in ("ln_f.weight", "ln_f.bias"):  # Adam state of the final norm, saved with the best checkpoint
        values = model["weights"][name][1]
        for state, array in (("exp_avg", values * 0.01), ("exp_avg_sq", values ** 2 * 1e-4)):
            conn.execute(
                """insert into optimizer_state (training_session_id, checkpoint_id, optimizer_type, hyperparameters,
                                                step, parameter_name, state_name, tensor_id)
                   values (%s, %s, 'adamw', %s, %s, %s, %s, %s)""",
                (session_id, checkpoint_id, json.dumps({"lr": 3e-4, "betas": [0.9, 0.999], "eps": 1e-8}), best_step,
                 name, state, tensors.put(conn, array.astype(np.float32), f"{name}.{state}")),
            )


def _inference(conn: psycopg.Connection, model: dict, shape: ModelShape, rng: np.random.Generator, now: datetime) -> None:
    head_dim = shape.hidden // shape.heads
    for request in range(3):
        started = now - timedelta(minutes=30 - request * 10)
        session_id = conn.execute(
            """insert into inference_sessions (model_id, status, generation_config, prompt_tokens, generated_tokens,
                                               started_at, ended_at)
               values (%s, %s, %s, 24, %s, %s, %s) returning inference_session_id""",
            (model["model_id"], "completed" if request < 2 else "running",
             json.dumps({"temperature": 0.8, "top_p": 0.95, "max_new_tokens": 64}), 40 + request * 8, started,
             started + timedelta(seconds=2 + request) if request < 2 else None),
        ).fetchone()[0]
        with bulk.copy_into(conn, "inference_metrics", ("inference_session_id", "metric_name", "value", "recorded_at"),
                            ("uuid", "text", "float8", "timestamptz")) as copy:
            for latency in rng.gamma(4.0, 12.0, size=8):
                copy.write_row((session_id, "latency_ms", float(latency), started))
        for layer_index, layer_id in enumerate(model["layer_ids"]):
            for block, (start, end) in enumerate(((0, 32), (32, 64))):
                kv = rng.standard_normal((shape.heads, end - start, head_dim)).astype(np.float16)
                expires = now + timedelta(hours=1) if request else now - timedelta(minutes=5)  # first session expired
                conn.execute(
                    """insert into kv_cache (inference_session_id, layer_id, position_start, position_end, dtype, shape,
                                             key_data, value_data, size_bytes, hit_count, expires_at)
                       values (%s, %s, %s, %s, 'float16', %s, %s, %s, %s, %s, %s)""",
                    (session_id, layer_id, start, end, list(kv.shape), kv.tobytes(), kv.tobytes(), 2 * kv.nbytes,
                     3 + block + layer_index, expires),
                )
                activation = rng.standard_normal((end - start, shape.hidden)).astype(np.float16)
                conn.execute(
                    """insert into activation_cache (inference_session_id, layer_id, activation_name, position_start,
                                                     position_end, dtype, shape, activation_data, size_bytes, hit_count,
                                                     expires_at)
                       values (%s, %s, 'mlp_out', %s, %s, 'float16', %s, %s, %s, %s, %s)""",
                    (session_id, layer_id, start, end, list(activation.shape), activation.tobytes(), activation.nbytes,
                     block, expires),
                )
            if request == 0:
                _attention_patterns(conn, session_id, layer_id, shape, rng)


def _attention_patterns(conn, session_id, layer_id, shape: ModelShape, rng: np.random.Generator, size: int = 16) -> None:
    """Causal softmax patterns: some heads attend locally (recent tokens), some broadly."""
    positions = np.arange(size)
    for head in range(shape.heads):
        sharpness = 0.02 + head * 0.6  # head 0 spreads its attention, later heads focus on nearby tokens
        scores = -sharpness * np.abs(positions[:, None] - positions[None, :]) + rng.normal(0, 0.3, (size, size))
        scores[positions[None, :] > positions[:, None]] = -np.inf
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        inference.record_attention(conn, session_id, layer_id, head, weights)


def _reactor(conn: psycopg.Connection, primary: dict, expert: dict, rng: np.random.Generator, now: datetime) -> None:
    reactor_id = fusion.create_reactor(conn, "arc-halo-prime", "weighted_average",
                                       {"temperature": 0.7, "min_confidence": 0.5}, status="active")
    fusion.attach_model(conn, reactor_id, primary["model_id"], 0.7, role="primary", priority=0)
    fusion.attach_model(conn, reactor_id, expert["model_id"], 0.3, role="expert", priority=1)
    fusion.add_edge(conn, reactor_id, expert["model_id"], primary["model_id"], "verifies", strength=0.8)
    for index in range(50):
        started = now - timedelta(minutes=50 - index)
        status = "failed" if index % 17 == 5 else ("running" if index >= 48 else "completed")
        contributors = [primary["model_id"]] + ([expert["model_id"]] if index % 3 else [])
        latency = float(rng.gamma(5.0, 8.0)) if status != "running" else None
        conn.execute(
            """insert into fusion_operations (reactor_id, input_reference, status, latency_ms, contributing_model_ids,
                                              output_summary, started_at, completed_at)
               values (%s, %s, %s, %s, %s, %s, %s, %s)""",
            (reactor_id, f"request-{index:04d}", status, latency, contributors,
             json.dumps({"confidence": round(float(rng.uniform(0.5, 0.99)), 3)}), started,
             started + timedelta(milliseconds=latency) if latency is not None else None),
        )
        if index % 10 == 0:
            conn.execute(
                "insert into reactor_metrics (reactor_id, metric_name, value, recorded_at) values"
                " (%s, 'throughput_ops', %s, %s), (%s, 'fusion_latency_ms', %s, %s)",
                (reactor_id, float(rng.uniform(8, 12)), started, reactor_id, float(rng.gamma(5.0, 8.0)), started),
            )
    conn.execute(
        "insert into cognitive_state (reactor_id, state_key, state, state_vector, confidence)"
        " values (%s, 'focus', %s, %s, 0.82)",
        (reactor_id, json.dumps({"topic": "fusion diagnostics", "turn": 7}),
         "[" + ",".join(f"{x:.4f}" for x in rng.standard_normal(16)) + "]"),
    )


@public_call
def load(conn: psycopg.Connection) -> uuid.UUID | None:
    """Load the sample dataset; returns gpt-fusion-1's id, or None when it was already there."""
    register_vector(conn)  # embeddings are copied as binary vectors
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('arc_halo.sample'))")  # two loaders never both insert
        if conn.execute(f"select 1 from models where model_name = %s and tenant_id = {tenancy.CURRENT_TENANT}",
                        (SAMPLE_MODEL,)).fetchone():
            return None
        rng = np.random.default_rng(SEED)
        now = datetime.now(timezone.utc)
        primary = _register_model(conn, FUSION_1, rng)
        expert = _register_model(conn, FUSION_MINI, rng)
        conn.execute("update models set status = 'ready' where model_id = %s", (expert["model_id"],))
        _training(conn, primary, rng, now)
        _inference(conn, primary, FUSION_1, rng, now)
        _reactor(conn, primary, expert, rng, now)
        return primary["model_id"]
