"""v_training_progress over a large metric history.

Loads N metric rows (default 10,000,000) over 1,000 sessions (100 running, 10 metrics each) and times
the seed's query `SELECT * FROM v_training_progress WHERE status = 'running'`, which reads
training_metrics_latest, against the same result computed by scanning metric history (DISTINCT ON
over training_metrics): the baseline, measured in the same run.

    .venv/bin/python benchmarks/bench_training_progress.py [--rows 10000000] [--repeats 25]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from common import bench_model, report, scratch_database, summary, timings_ms  # noqa: E402

from arc_halo import training  # noqa: E402

SESSIONS = 1000
RUNNING = 100
METRICS = ("loss", "eval_loss", "learning_rate", "accuracy", "grad_norm", "tokens_per_second", "perplexity",
           "loss_scale", "weight_norm", "throughput")

SEED_QUERY = "SELECT * FROM v_training_progress WHERE status = 'running';"

# Baseline: the view's answer, with the latest values taken from history instead of the latest table.
HISTORY_SCAN_QUERY = """
with latest as (
    select distinct on (training_session_id, metric_name) training_session_id, metric_name, step, value, recorded_at
    from training_metrics
    order by training_session_id, metric_name, step desc, recorded_at desc
), pivot as (
    select training_session_id, jsonb_object_agg(metric_name, value) as latest_metrics,
           max(value) filter (where metric_name = 'loss') as latest_loss, max(step) as latest_metric_step
    from latest group by training_session_id
)
select s.*, pivot.latest_loss, pivot.latest_metric_step, pivot.latest_metrics
from training_sessions s left join pivot using (training_session_id)
where s.status = 'running'
"""


def load(conn: psycopg.Connection, rows: int) -> float:
    steps = max(rows // (SESSIONS * len(METRICS)), 1)
    started = time.perf_counter()
    model_id = bench_model(conn)[0]
    two_days_ago = conn.execute("select now() - interval '2 days'").fetchone()[0]
    for index in range(1, SESSIONS + 1):
        session_id = training.start_session(conn, model_id, f"run-{index}", total_steps=steps * 2, at=two_days_ago)
        training.update_progress(conn, session_id, steps)
        if index > RUNNING:
            training.finish_session(conn, session_id)
    conn.commit()
    session_ids = [row[0] for row in conn.execute("select training_session_id from training_sessions order by 1")]
    batch = 50  # sessions per statement: the latest-value trigger sees one transition table per batch
    for start in range(0, SESSIONS, batch):
        conn.execute(
            """insert into training_metrics (training_session_id, metric_name, step, value, recorded_at)
               select s.id, m.name, g.step, random(), now() - interval '1 day' + g.step * interval '1 second'
               from unnest(%s::uuid[]) as s (id)
               cross join unnest(%s::text[]) as m (name)
               cross join generate_series(1, %s) as g (step)""",
            (session_ids[start:start + batch], list(METRICS), steps))
        conn.commit()
    conn.execute("vacuum analyze training_metrics")
    conn.execute("vacuum analyze training_metrics_latest")
    conn.execute("vacuum analyze training_sessions")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=25)
    args = parser.parse_args()
    with scratch_database() as url, psycopg.connect(url, autocommit=True) as conn:
        seconds = load(conn, args.rows)
        total = conn.execute("select count(*) from training_metrics").fetchone()[0]
        print(f"loaded {total:,} metric rows over {SESSIONS} sessions in {seconds:.0f} s ({total / seconds:,.0f} rows/s)")
        assert len(conn.execute(SEED_QUERY).fetchall()) == RUNNING
        view = timings_ms(lambda: conn.execute(SEED_QUERY).fetchall(), args.repeats)
        scan = timings_ms(lambda: conn.execute(HISTORY_SCAN_QUERY).fetchall(), max(3, args.repeats // 5), warmup=1)
        print(f"{'v_training_progress (latest table)':38s} {summary(view)}")
        print(f"{'baseline: history scan (DISTINCT ON)':38s} {summary(scan)}")
        report(f"v_training_progress, {total:,} metric rows (median)", statistics.median(view), "ms",
               "history scan (DISTINCT ON)", statistics.median(scan), target="median < 50 ms",
               met=statistics.median(view) < 50, higher_is_better=False)


if __name__ == "__main__":
    main()
