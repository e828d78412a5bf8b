"""Metric ingest: MetricLogger (buffered binary COPY) against a row-at-a-time INSERT loop, same run.

Both write into training_metrics with all its indexes, its foreign key and the latest-value trigger.
The issue's targets: at least 300,000 rows/s, and at least 20x the INSERT loop.

    .venv/bin/python benchmarks/bench_metric_ingest.py [--rows 1000000] [--baseline-rows 20000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from common import scratch_database  # noqa: E402

from arc_halo import training  # noqa: E402

METRICS = ("loss", "learning_rate", "grad_norm", "accuracy", "tokens_per_second", "eval_loss", "perplexity",
           "weight_norm", "loss_scale", "throughput")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    args = parser.parse_args()
    with scratch_database() as url, psycopg.connect(url) as conn:
        model_id = conn.execute(
            """insert into models (model_name, architecture, vocab_size, hidden_size, num_layers, num_attention_heads,
                                   intermediate_size, max_sequence_length)
               values ('bench', 'decoder_only', 32000, 512, 8, 8, 2048, 2048) returning model_id""").fetchone()[0]
        conn.commit()
        logged = training.start_session(conn, model_id, "logger")
        looped = training.start_session(conn, model_id, "insert-loop")

        started = time.perf_counter()
        with training.MetricLogger(conn, logged, buffer_rows=100_000, flush_seconds=3600) as logger:
            for step in range(args.rows // len(METRICS)):
                for name in METRICS:
                    logger.log(name, 0.5, step)
        logger_seconds = time.perf_counter() - started
        logger_rate = (args.rows // len(METRICS) * len(METRICS)) / logger_seconds

        started = time.perf_counter()
        with conn.transaction():
            for step in range(args.baseline_rows // len(METRICS)):
                for name in METRICS:
                    conn.execute("insert into training_metrics (training_session_id, metric_name, step, value)"
                                 " values (%s, %s, %s, %s)", (looped, name, step, 0.5))
        loop_rate = (args.baseline_rows // len(METRICS) * len(METRICS)) / (time.perf_counter() - started)

        print(f"{'MetricLogger (binary COPY)':32s} {logger_rate:12,.0f} rows/s  ({args.rows:,} rows)")
        print(f"{'baseline: INSERT per row':32s} {loop_rate:12,.0f} rows/s  ({args.baseline_rows:,} rows)")
        print(f"ratio: {logger_rate / loop_rate:.1f}x   targets: >= 300,000 rows/s -> "
              f"{'met' if logger_rate >= 300_000 else 'NOT met'}; >= 20x -> {'met' if logger_rate >= 20 * loop_rate else 'NOT met'}")


if __name__ == "__main__":
    main()
