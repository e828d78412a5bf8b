"""Metric ingest: MetricLogger (buffered binary COPY) against a row-at-a-time INSERT loop, same run.

Both write into training_metrics with all its indexes, its session check and the latest-value trigger.
The issue's targets: at least 300,000 rows/s, and at least 20x the INSERT loop.

    .venv/bin/python benchmarks/bench_metric_ingest.py [--rows 500000] [--runs 3] [--baseline-rows 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from common import report, scratch_database  # noqa: E402

from arc_halo import training  # noqa: E402

METRICS = ("loss", "learning_rate", "grad_norm", "accuracy", "tokens_per_second", "eval_loss", "perplexity",
           "weight_norm", "loss_scale", "throughput")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000, help="rows per logger run")
    parser.add_argument("--runs", type=int, default=3, help="logger runs; the median is reported")
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    args = parser.parse_args()
    steps = args.rows // len(METRICS)
    with scratch_database() as url, psycopg.connect(url) as conn:
        model_id = conn.execute(
            """insert into models (model_name, architecture, vocab_size, hidden_size, num_layers, num_attention_heads,
                                   intermediate_size, max_sequence_length)
               values ('bench', 'decoder_only', 32000, 512, 8, 8, 2048, 2048) returning model_id""").fetchone()[0]
        conn.commit()
        looped = training.start_session(conn, model_id, "insert-loop")
        values = dict.fromkeys(METRICS, 0.5)
        rates = []
        for run in range(args.runs):
            logged = training.start_session(conn, model_id, f"logger-{run}")
            started = time.perf_counter()
            with training.MetricLogger(conn, logged, buffer_rows=100_000, flush_seconds=3600) as logger:
                for step in range(steps):
                    logger.log_many(values, step)  # a training step reports its metrics together
            rates.append(steps * len(METRICS) / (time.perf_counter() - started))
        logger_rate = statistics.median(rates)

        started = time.perf_counter()
        with conn.transaction():
            for step in range(args.baseline_rows // len(METRICS)):
                for name in METRICS:
                    conn.execute("insert into training_metrics (training_session_id, metric_name, step, value)"
                                 " values (%s, %s, %s, %s)", (looped, name, step, 0.5))
        loop_rate = (args.baseline_rows // len(METRICS) * len(METRICS)) / (time.perf_counter() - started)
        stored = conn.execute("select count(*) from training_metrics").fetchone()[0]
        assert stored == args.runs * steps * len(METRICS) + args.baseline_rows // len(METRICS) * len(METRICS)

        print(f"logger runs: {', '.join(f'{rate:,.0f}' for rate in rates)} rows/s ({steps * len(METRICS):,} rows each)")
        report("metric ingest, MetricLogger (binary COPY)", logger_rate, "rows/s",
               "INSERT per row", loop_rate, target=">= 300,000 rows/s and >= 20x",
               met=logger_rate >= 300_000 and logger_rate >= 20 * loop_rate)


if __name__ == "__main__":
    main()
