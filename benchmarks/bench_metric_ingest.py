"""Metric ingest: MetricLogger (buffered binary COPY) against a row-at-a-time INSERT loop, same run.

Both write into training_metrics with all its indexes, its session check and the latest-value trigger.
The issue's targets: at least 300,000 rows/s, and at least 20x the INSERT loop. The same logger as the
application's login with row-level security on (COPY into a staging table, then one INSERT ... SELECT
the policies check) is compared with the owner's direct COPY in the same database: at least 0.7x.

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
from common import app_url, bench_model, report, scratch_database  # noqa: E402

from arc_halo import db, training  # noqa: E402

METRICS = ("loss", "learning_rate", "grad_norm", "accuracy", "tokens_per_second", "eval_loss", "perplexity",
           "weight_norm", "loss_scale", "throughput")


def logger_rate(conn: psycopg.Connection, model_id, steps: int, label: str) -> float:
    session = training.start_session(conn, model_id, label)
    values = dict.fromkeys(METRICS, 0.5)
    started = time.perf_counter()
    with training.MetricLogger(conn, session, buffer_rows=100_000, flush_seconds=3600) as logger:
        for step in range(steps):
            logger.log_many(values, step)  # a training step reports its metrics together
    return steps * len(METRICS) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000, help="rows per logger run")
    parser.add_argument("--runs", type=int, default=3, help="logger runs; the median is reported")
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    args = parser.parse_args()
    steps = args.rows // len(METRICS)
    # Built with row-level security on: the owner is exempt from the policies (its COPY goes straight into
    # the table, as with RLS off); the application's login is not (staging table + INSERT ... SELECT).
    with scratch_database(row_level_security=True) as url, db.connect(url) as conn, \
            db.connect(app_url(url), tenant="bench") as app:
        model_id = bench_model(conn)[0]
        conn.commit()
        app_model_id = bench_model(app)[0]
        app.commit()
        looped = training.start_session(conn, model_id, "insert-loop")
        rates, app_rates = [], []
        for run in range(args.runs):  # interleaved, so both see the same machine
            rates.append(logger_rate(conn, model_id, steps, f"logger-{run}"))
            app_rates.append(logger_rate(app, app_model_id, steps, f"logger-app-{run}"))
        owner_rate, app_rate = statistics.median(rates), statistics.median(app_rates)

        started = time.perf_counter()
        with conn.transaction():
            for step in range(args.baseline_rows // len(METRICS)):
                for name in METRICS:
                    conn.execute("insert into training_metrics (training_session_id, metric_name, step, value)"
                                 " values (%s, %s, %s, %s)", (looped, name, step, 0.5))
        loop_rate = (args.baseline_rows // len(METRICS) * len(METRICS)) / (time.perf_counter() - started)
        stored = conn.execute("select count(*) from training_metrics").fetchone()[0]
        assert stored == 2 * args.runs * steps * len(METRICS) + args.baseline_rows // len(METRICS) * len(METRICS)
        assert app.execute("select count(*) from training_metrics").fetchone()[0] == args.runs * steps * len(METRICS)

        print(f"logger runs: {', '.join(f'{rate:,.0f}' for rate in rates)} rows/s ({steps * len(METRICS):,} rows each); "
              f"as arc_halo_app with RLS on: {', '.join(f'{rate:,.0f}' for rate in app_rates)} rows/s")
        report("metric ingest, MetricLogger (binary COPY)", owner_rate, "rows/s",
               "INSERT per row", loop_rate, target=">= 300,000 rows/s and >= 20x",
               met=owner_rate >= 300_000 and owner_rate >= 20 * loop_rate)
        report("metric ingest, MetricLogger as arc_halo_app, RLS on (staging + INSERT ... SELECT)", app_rate, "rows/s",
               "RLS not applied (owner, direct COPY)", owner_rate, target=">= 0.7x", met=app_rate >= 0.7 * owner_rate)


if __name__ == "__main__":
    main()
