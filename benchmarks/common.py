"""Shared pieces of the benchmarks: a freshly built scratch database and timing helpers.

Figures vary run to run on a shared 2-core machine; every benchmark therefore prints its baseline,
measured in the same run, beside the figure, and the ratio between them.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import make_conninfo

from arc_halo import dbt, embedded, environments, registry


@contextmanager
def scratch_database(row_level_security: bool = False) -> Iterator[str]:
    """The project built (without dbt tests) into a throwaway database on the embedded server."""
    server = embedded.ensure_running()
    name = f"arc_halo_bench_{uuid.uuid4().hex[:8]}"
    embedded.ensure_database(server, name)
    variables = ["--vars", "{row_level_security: true}"] if row_level_security else []
    try:
        dbt.build(["--exclude", "resource_type:test", "--quiet", *variables], env=environments.local_environment(server, name))
        yield server.url(name)
    finally:
        embedded.drop_database(server, name)


APP_LOGIN = "arc_halo_bench_app"


def app_url(url: str) -> str:
    """`url` as a login in arc_halo_app that owns nothing, so row-level security applies to it as to an
    application (the owner, which built the schema, is exempt from the policies)."""
    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("select 1 from pg_roles where rolname = %s", (APP_LOGIN,)).fetchone():
            conn.execute(f"create role {APP_LOGIN} login")
        conn.execute(f"grant arc_halo_app to {APP_LOGIN}")
    return make_conninfo(url, user=APP_LOGIN)


def timings_ms(action: Callable[[], object], repeats: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        action()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"median {statistics.median(samples):9.2f} ms   p95 {p95:9.2f} ms"


RESULT_PREFIX = "@@result "


def report(figure: str, value: float, unit: str, baseline: str, baseline_value: float, target: str, met: bool,
           higher_is_better: bool = True) -> None:
    """Print one figure beside its same-run baseline, and a machine-readable line run_all.py tabulates.
    The ratio is how many times better the figure is than the baseline."""
    ratio = value / baseline_value if higher_is_better else baseline_value / value
    print(f"{figure}: {value:,.2f} {unit} vs {baseline} {baseline_value:,.2f} {unit} -> {ratio:.2f}x; "
          f"target {target}: {'met' if met else 'NOT met'}")
    print(RESULT_PREFIX + json.dumps({"figure": figure, "value": value, "unit": unit, "baseline": baseline,
                                      "baseline_value": baseline_value, "ratio": ratio, "target": target, "met": met}),
          flush=True)


def save_durably(arrays: dict, path: str) -> None:
    """The durable baseline of the tensor benchmarks: safetensors' save_file, then fsync."""
    from safetensors.numpy import save_file

    save_file(arrays, path)
    with open(path, "rb") as written:
        os.fsync(written.fileno())


def bench_model(conn: psycopg.Connection, name: str = "bench", *, vocab_size: int = 32000, hidden_size: int = 512,
                num_layers: int = 8, heads: int = 8, layers: bool = False) -> tuple:
    """A model registered as applications do (arc_halo.registry): its id, and with `layers` its layer ids."""
    model_id = registry.register_model(
        conn, name, architecture="decoder_only", vocab_size=vocab_size, hidden_size=hidden_size, num_layers=num_layers,
        num_attention_heads=heads, intermediate_size=4 * hidden_size, max_sequence_length=2048)
    layer_ids = [registry.add_layer(conn, model_id, index, hidden_size=hidden_size) for index in range(num_layers)] if layers else []
    return model_id, layer_ids

