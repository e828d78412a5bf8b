"""Metric logging side by side with what users would pick instead: MLflow's tracking store (its SQLAlchemy
store, on the same embedded PostgreSQL, in a database of its own) with `log_batch` in batches of 1,000
(MLflow's per-call limit), against MetricLogger, same rows, same run.

mlflow is a benchmark-only dependency (`make bench` installs requirements-bench.lock); without it this
script says so and exits 0.

    .venv/bin/python benchmarks/bench_mlflow.py [--rows 50000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from common import bench_model, report, scratch_database  # noqa: E402

from arc_halo import embedded, training  # noqa: E402

METRICS = ("loss", "learning_rate", "grad_norm", "accuracy", "tokens_per_second", "eval_loss", "perplexity",
           "weight_norm", "loss_scale", "throughput")
MLFLOW_BATCH = 1000  # log_batch accepts at most 1,000 metrics per call


def mlflow_rate(steps: int) -> float:
    from mlflow.entities import Metric
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    server = embedded.ensure_running()
    database = f"mlflow_bench_{uuid.uuid4().hex[:8]}"
    embedded.ensure_database(server, database)
    try:
        url = server.url(database).replace("postgresql://", "postgresql+psycopg://", 1)
        with tempfile.TemporaryDirectory() as artifacts:
            store = SqlAlchemyStore(url, artifacts)  # creates MLflow's schema with its alembic migrations
            experiment = store.create_experiment("bench")
            run = store.create_run(experiment, user_id="bench", start_time=int(time.time() * 1000), tags=[],
                                   run_name="bench")
            now = int(time.time() * 1000)
            metrics = [Metric(name, 0.5, now, step) for step in range(steps) for name in METRICS]
            started = time.perf_counter()
            for offset in range(0, len(metrics), MLFLOW_BATCH):
                store.log_batch(run.info.run_id, metrics=metrics[offset:offset + MLFLOW_BATCH], params=[], tags=[])
            elapsed = time.perf_counter() - started
            store.engine.dispose()
        return len(metrics) / elapsed
    finally:
        embedded.drop_database(server, database)


def metric_logger_rate(steps: int) -> float:
    with scratch_database() as url, psycopg.connect(url) as conn:
        model_id = bench_model(conn)[0]
        conn.commit()
        session = training.start_session(conn, model_id, "logger")
        values = dict.fromkeys(METRICS, 0.5)
        started = time.perf_counter()
        with training.MetricLogger(conn, session) as logger:
            for step in range(steps):
                logger.log_many(values, step)
        return steps * len(METRICS) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    try:
        import mlflow  # noqa: F401
    except ImportError:
        print("mlflow is not installed: `make bench` installs it (requirements-bench.lock); skipped")
        return
    steps = args.rows // len(METRICS)
    mlflow_rows_per_s = mlflow_rate(steps)
    logger_rows_per_s = metric_logger_rate(steps)
    print(f"{steps * len(METRICS):,} metric rows: MLflow log_batch {mlflow_rows_per_s:,.0f} rows/s,"
          f" MetricLogger {logger_rows_per_s:,.0f} rows/s")
    report(f"metric logging, {steps * len(METRICS):,} rows, MetricLogger", logger_rows_per_s, "rows/s",
           "MLflow SqlAlchemyStore log_batch x1000", mlflow_rows_per_s, target="faster than MLflow",
           met=logger_rows_per_s > mlflow_rows_per_s)


if __name__ == "__main__":
    main()
