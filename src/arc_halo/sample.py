"""A sample dataset that makes every example in the seed return meaningful rows.

`gpt-fusion-1` (a small GPT-2-shaped model with real weight tensors), a running training session with
metric history and checkpoints, an inference session with caches and attention patterns, and an
active reactor fusing it with `gpt-fusion-mini`. Loaded in one transaction, and only once: a second
load finds `gpt-fusion-1` and changes nothing.

Written only through the library's public write API (arc_halo.registry for models, layers, heads and
weights; tensors.put; training, inference and fusion calls, backdated with their `at=`), so it loads
as the application role with row-level security on, for the tenant of the connection, and `make run`
exercises the paths applications use. No SQL writes here (tests/integration/test_house_shape.py).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypedDict

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from arc_halo import embeddings, fusion, inference, registry, tenancy, tensors, training
from arc_halo.errors import public_call

SAMPLE_MODEL = "gpt-fusion-1"
SEED = 2026
# The specification's example queries, verbatim; example_results adds its two function calls.
EXAMPLE_QUERIES = (
    "SELECT * FROM v_model_architecture WHERE model_name = 'gpt-fusion-1';",
    "SELECT * FROM v_training_progress WHERE status = 'running';",
    "SELECT * FROM v_reactor_status WHERE status = 'active';",
)


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
    params: list[tuple[str, int | None, str, tuple[int, ...]]] = [("wte.weight", None, "embedding", (shape.vocab, h)), ("wpe.weight", None, "embedding", (shape.positions, h))]
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


class _SampleModel(TypedDict):
    model_id: uuid.UUID
    layer_ids: list[uuid.UUID]
    weights: dict[str, tuple[uuid.UUID, np.ndarray]]  # parameter name -> (tensor id, values)


def _register_model(conn: psycopg.Connection, shape: ModelShape, rng: np.random.Generator) -> _SampleModel:
    config = {"model_type": "gpt2", "n_embd": shape.hidden, "n_head": shape.heads, "n_layer": shape.layers,
              "vocab_size": shape.vocab, "n_positions": shape.positions, "activation_function": "gelu_new"}
    model_id = registry.register_model(
        conn, shape.name, architecture="decoder_only", model_type="gpt2", vocab_size=shape.vocab,
        hidden_size=shape.hidden, num_layers=shape.layers, num_attention_heads=shape.heads,
        intermediate_size=shape.intermediate, max_sequence_length=shape.positions, config=config, status="training",
        description="Arc-Halo sample model")
    layer_ids = [registry.add_layer(conn, model_id, layer, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
                                    num_attention_heads=shape.heads, attention_type="causal_self", activation="gelu_new",
                                    normalization="layer_norm", dropout=0.1)
                 for layer in range(shape.layers)]
    weights = {}
    for name, layer, kind, tensor_shape in gpt2_parameters(shape):
        values = (rng.standard_normal(tensor_shape) * 0.02).astype(np.float32)
        if kind == "norm" and name.endswith("weight"):
            values = np.ones(tensor_shape, dtype=np.float32)
        tensor_id = tensors.put(conn, values, name)
        registry.add_weight(conn, model_id, name, kind, tensor_id, layer_id=None if layer is None else layer_ids[layer],
                            requires_grad=name != "wpe.weight")
        weights[name] = (tensor_id, values)
    wte, wpe = weights["wte.weight"][1], weights["wpe.weight"][1]
    embeddings.bulk_load(conn, model_id, [("token", wte, [f"<tok{index}>" for index in range(len(wte))]),
                                          ("position", wpe, None)])
    registry.plan_gradient_checkpointing(conn, model_id, "full", shape.layers, 0.6)
    return {"model_id": model_id, "layer_ids": layer_ids, "weights": weights}


def _training(conn: psycopg.Connection, model: _SampleModel, rng: np.random.Generator, now: datetime) -> None:
    total_steps, current_step, seconds_per_step = 1000, 420, 6.0
    started = now - timedelta(seconds=current_step * seconds_per_step)
    session_id = training.start_session(
        conn, model["model_id"], "gpt-fusion-1-pretrain", total_steps=total_steps, total_epochs=3,
        hyperparameters={"learning_rate": 3e-4, "batch_size": 32, "warmup_steps": 100, "optimizer": "adamw",
                         "weight_decay": 0.01},
        dataset_name="arc-halo-corpus-v1", at=started)
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
    training.update_progress(conn, session_id, current_step, epoch=1)
    best_step = 400
    weights = {name: values for name, (_, values) in model["weights"].items()}  # stored already: referenced
    for step in (100, 200, 300, 400):
        best = step == best_step
        # Adam state of the final norm, saved with the best checkpoint
        state = {name: {"exp_avg": weights[name] * 0.01, "exp_avg_sq": weights[name] ** 2 * 1e-4}
                 for name in ("ln_f.weight", "ln_f.bias")} if best else None
        training.save_checkpoint(
            conn, model["model_id"], session_id, step, weights, optimizer_state=state,
            optimizer_type="adamw" if best else None,
            optimizer_hyperparameters={"lr": 3e-4, "betas": [0.9, 0.999], "eps": 1e-8} if best else None,
            epoch=step * 3 // total_steps, metrics={"loss": round(losses[step], 4)}, is_best=best,
            at=started + timedelta(seconds=step * seconds_per_step))


def _inference(conn: psycopg.Connection, model: _SampleModel, shape: ModelShape, rng: np.random.Generator, now: datetime) -> None:
    head_dim = shape.hidden // shape.heads
    for request in range(3):
        started = now - timedelta(minutes=30 - request * 10)
        session_id = inference.start_session(conn, model["model_id"],
                                             {"temperature": 0.8, "top_p": 0.95, "max_new_tokens": 64},
                                             prompt_tokens=24, at=started)
        for latency in rng.gamma(4.0, 12.0, size=8):
            inference.log_metrics(conn, session_id, {"latency_ms": float(latency)}, at=started)
        if request < 2:
            inference.finish_session(conn, session_id, 40 + request * 8, at=started + timedelta(seconds=2 + request))
        written = now - timedelta(minutes=65) if request == 0 else now  # the first session's caches have expired
        for layer_index, layer_id in enumerate(model["layer_ids"]):
            for start, end in ((0, 32), (32, 64)):
                kv = rng.standard_normal((shape.heads, end - start, head_dim)).astype(np.float16)
                inference.put_kv(conn, session_id, layer_id, kv, kv, start, ttl=timedelta(hours=1), at=written)
                activation = rng.standard_normal((end - start, shape.hidden)).astype(np.float16)
                inference.put_activation(conn, session_id, layer_id, "mlp_out", activation, start,
                                         ttl=timedelta(hours=1), at=written)
            for _ in range(3 + layer_index):  # cache hits (the expired session's count none)
                inference.get_kv(conn, session_id, layer_id)
            if request == 0:
                _attention_patterns(conn, session_id, layer_id, shape, rng)


def _attention_patterns(conn: psycopg.Connection, session_id: uuid.UUID, layer_id: uuid.UUID, shape: ModelShape,
                        rng: np.random.Generator, size: int = 16) -> None:
    """Causal softmax patterns: some heads attend locally (recent tokens), some broadly."""
    positions = np.arange(size)
    for head in range(shape.heads):
        sharpness = 0.02 + head * 0.6  # head 0 spreads its attention, later heads focus on nearby tokens
        scores = -sharpness * np.abs(positions[:, None] - positions[None, :]) + rng.normal(0, 0.3, (size, size))
        scores[positions[None, :] > positions[:, None]] = -np.inf
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        inference.record_attention(conn, session_id, layer_id, head, weights)


def _reactor(conn: psycopg.Connection, primary: _SampleModel, expert: _SampleModel, rng: np.random.Generator, now: datetime) -> None:
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
        fusion.record_operation(conn, reactor_id, contributors, status, latency, f"request-{index:04d}",
                                {"confidence": round(float(rng.uniform(0.5, 0.99)), 3)}, at=started)
        if index % 10 == 0:
            fusion.record_metric(conn, reactor_id, "throughput_ops", float(rng.uniform(8, 12)), at=started)
            fusion.record_metric(conn, reactor_id, "fusion_latency_ms", float(rng.gamma(5.0, 8.0)), at=started)
    fusion.set_state(conn, reactor_id, "focus", {"topic": "fusion diagnostics", "turn": 7},
                     np.round(rng.standard_normal(16), 4), confidence=0.82)


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
        registry.set_model_status(conn, expert["model_id"], "ready")
        _training(conn, primary, rng, now)
        _inference(conn, primary, FUSION_1, rng, now)
        _reactor(conn, primary, expert, rng, now)
        return primary["model_id"]


@public_call
def example_results(conn: psycopg.Connection) -> list[tuple[str, list[str], list[tuple[Any, ...]]]]:
    """The specification's example statements, run over the sample data: (statement, column names, rows)
    each. The two function calls name gpt-fusion-1's id (a nil id when the sample is not loaded)."""
    row = conn.execute(f"select model_id from models where model_name = %s and tenant_id = {tenancy.CURRENT_TENANT}",
                       (SAMPLE_MODEL,)).fetchone()
    model_id = str(row[0]) if row else "00000000-0000-0000-0000-000000000000"
    results = []
    for statement in (*EXAMPLE_QUERIES, f"SELECT * FROM calculate_model_parameters('{model_id}');",
                      f"SELECT get_latest_checkpoint('{model_id}');"):
        cursor = conn.execute(statement)
        if cursor.description is None:
            raise AssertionError("unreachable: a SELECT describes its columns")
        results.append((statement, [column.name for column in cursor.description], cursor.fetchall()))
    return results

