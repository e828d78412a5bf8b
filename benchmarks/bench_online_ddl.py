"""Online DDL: do builds stall the writers? Four writers (two MetricLogger loggers, two KV-cache put_kv
loops) and a long analyst query run while a build adds a column, an index and a check to kv_cache and
training_metrics, each holding --rows rows. The figure is the longest any writer waited for one write;
the baseline is the same change as plain DDL in one transaction (what a naive migration or the old
materialization did), on a copy of the same database, in the same run. The issue's target: no writer
stall over 1 second.

    .venv/bin/python benchmarks/bench_online_ddl.py [--rows 1000000] [--analyst-seconds 8]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).parent))
from common import bench_model, report  # noqa: E402

from arc_halo import config, dbt, embedded, environments, inference, training  # noqa: E402

PROJECT_FILES = ("dbt_project.yml", "profiles.yml.example", "models", "macros", "seeds", "tests", "analyses", "functions",
                 "migrations")
# The change under test, as a contract edit (the build) and as the plain DDL it amounts to (the baseline).
NEW_COLUMN = """      - name: annotation
        data_type: text
        description: A note an operator may attach (added by the online-DDL benchmark).
"""
KV_CHECK = """      - type: check
        name: kv_cache_size_bytes_bench_check
        columns: [size_bytes]
        expression: "size_bytes >= 0"
"""
METRIC_CHECK = """      - type: check
        name: training_metrics_step_bench_check
        columns: [step]
        expression: "step >= 0"
"""
PLAIN_DDL = """
alter table kv_cache add column annotation text;
alter table kv_cache add constraint kv_cache_size_bytes_bench_check check (size_bytes >= 0);
create index kv_cache_created_at_bench_idx on kv_cache using btree (created_at);
alter table training_metrics add column annotation text;
alter table training_metrics add constraint training_metrics_step_bench_check check (step >= 0);
create index training_metrics_step_bench_idx on training_metrics using btree (step);
"""


def edited_project(directory: Path) -> Path:
    """A copy of the project whose contracts ask for the change."""
    root = config.project_dir()
    for item in PROJECT_FILES:
        if (root / item).is_dir():
            shutil.copytree(root / item, directory / item)
        elif (root / item).exists():
            shutil.copy(root / item, directory / item)
    shutil.copy(root / "profiles.yml.example", directory / "profiles.yml")

    def edit(relative: str, anchor: str, addition: str, before: bool = False) -> None:
        path = directory / relative
        text = path.read_text()
        assert anchor in text, (relative, anchor)
        path.write_text(text.replace(anchor, addition + anchor if before else anchor + addition, 1))

    def add_to_model(relative: str, model: str, constraint: str) -> None:
        """A model-level check (a `constraints:` block before `columns:`) and the new first column."""
        path = directory / relative
        text = path.read_text()
        start = text.index(f"  - name: {model}\n")
        columns = text.index("    columns:\n", start)
        existing = text.find("    constraints:\n", start, columns)
        if existing < 0:
            text = text[:columns] + "    constraints:\n" + constraint + text[columns:]
        else:
            at = existing + len("    constraints:\n")
            text = text[:at] + constraint + text[at:]
        at = text.index("    columns:\n", start) + len("    columns:\n")
        path.write_text(text[:at] + NEW_COLUMN + text[at:])

    add_to_model("models/raw/inference/_inference__models.yml", "kv_cache", KV_CHECK)
    add_to_model("models/raw/training/_training__models.yml", "training_metrics", METRIC_CHECK)
    edit("models/raw/inference/kv_cache.sql", "        {'columns': ['expires_at']",
         "        {'columns': ['created_at'], 'name': 'kv_cache_created_at_bench_idx'},\n", before=True)
    edit("models/raw/training/training_metrics.sql", "    table_indexes=[",
         "{'columns': ['step'], 'name': 'training_metrics_step_bench_idx'}, ")
    return directory


def fill(url: str, rows: int) -> dict:
    """A model, its layers, sessions, `rows` KV-cache entries and `rows` metric values."""
    with psycopg.connect(url) as conn:
        model_id, layers = bench_model(conn, "online-ddl", hidden_size=256, num_layers=4, heads=4, layers=True)
        conn.commit()
        history = training.start_session(conn, model_id, "history")
        with training.MetricLogger(conn, history) as logger:
            for step in range(rows // 4):
                logger.log_many({"loss": 1.0 / (step + 1), "lr": 1e-4, "grad_norm": 1.0, "tokens": float(step)}, step)
        cached = inference.start_session(conn, model_id)
        conn.execute(
            """insert into kv_cache (inference_session_id, layer_id, position_start, position_end, dtype, shape,
                                     key_data, value_data, size_bytes, expires_at)
               select %s, %s, g, g + 1, 'float16', array[1, 1, 4], '\\x0000000000000000', '\\x0000000000000000', 8,
                      now() + interval '1 day'
               from generate_series(0, %s - 1) as g""", (cached, layers[0], rows))
        conn.commit()
        conn.execute("analyze kv_cache")
        conn.execute("analyze training_metrics")
        conn.commit()
        return {"model_id": model_id, "layers": layers}


class Writers:
    """Four writers: each records the duration of every write it makes."""

    def __init__(self, url: str, ids: dict) -> None:
        self.url, self.ids = url, ids
        self.stop = threading.Event()
        self.longest = [0.0] * 4
        self.counts = [0] * 4
        self.in_flight: list[float | None] = [None] * 4  # when the write under way started
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(number,), daemon=True) for number in range(4)]

    def _run(self, number: int) -> None:
        try:
            with psycopg.connect(self.url) as conn:
                write = self._metric_writer(conn) if number < 2 else self._kv_writer(conn, number)
                while not self.stop.is_set():
                    started = self.in_flight[number] = time.perf_counter()
                    write()
                    self.in_flight[number] = None
                    self.longest[number] = max(self.longest[number], time.perf_counter() - started)
                    self.counts[number] += 1
                    time.sleep(0.01)
        except Exception as exc:  # a dead writer would count as never stalled: the run fails instead
            self.errors.append(f"writer {number} died: {exc}")

    def _metric_writer(self, conn: psycopg.Connection) -> Callable[[], None]:
        session = training.start_session(conn, self.ids["model_id"], f"live-{uuid.uuid4().hex[:6]}")
        logger = training.MetricLogger(conn, session, buffer_rows=1_000_000, flush_seconds=3600)
        step = iter(range(10**9))

        def write() -> None:
            logger.log_many({"loss": 0.5, "lr": 1e-4}, next(step))
            logger.flush()

        return write

    def _kv_writer(self, conn: psycopg.Connection, number: int) -> Callable[[], None]:
        session = inference.start_session(conn, self.ids["model_id"])
        keys = np.zeros((4, 8, 16), dtype=np.float16)
        position = iter(range(0, 10**9, 8))

        def write() -> None:
            inference.put_kv(conn, session, self.ids["layers"][number % 4], keys, keys, position_start=next(position))

        return write

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        now = time.perf_counter()
        for number, started in enumerate(self.in_flight):
            if started is not None and self.threads[number].is_alive():  # still stuck in a write: it counts
                self.longest[number] = max(self.longest[number], now - started)
                self.errors.append(f"writer {number} still waiting after {now - started:.1f} s")


def analyst(url: str, seconds: float) -> threading.Thread:
    """A long read of both tables: it holds their ACCESS SHARE locks for `seconds`."""
    def run() -> None:
        with psycopg.connect(url) as conn:
            conn.execute("select (select count(*) from kv_cache) + (select count(*) from training_metrics), pg_sleep(%s)",
                         (seconds,))
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def scenario(url: str, ids: dict, analyst_seconds: float, change: Callable[[], None]) -> tuple[float, float, Writers]:
    """Writers run; the analyst starts; one second later the change starts. Returns (longest stall,
    change seconds, writers)."""
    with Writers(url, ids) as writers:
        time.sleep(2.0)  # warm: connections made, statements prepared
        writers.longest = [0.0] * 4
        reader = analyst(url, analyst_seconds)
        time.sleep(1.0)
        started = time.perf_counter()
        change()
        took = time.perf_counter() - started
        reader.join()
        time.sleep(1.0)
    if writers.errors:
        raise SystemExit(f"the benchmark is void: {'; '.join(writers.errors)}")
    return max(writers.longest), took, writers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in kv_cache and in training_metrics")
    parser.add_argument("--analyst-seconds", type=float, default=8.0)
    args = parser.parse_args()
    server = embedded.ensure_running()
    online_db, plain_db = (f"arc_halo_bench_{uuid.uuid4().hex[:8]}" for _ in range(2))
    embedded.ensure_database(server, online_db)
    try:
        env = environments.local_environment(server, online_db)
        dbt.build(["--exclude", "resource_type:test", "--quiet"], env=env)
        ids = fill(server.url(online_db), args.rows)
        with psycopg.connect(server.url("postgres"), autocommit=True) as admin:
            admin.execute(sql.SQL("create database {} template {}").format(sql.Identifier(plain_db), sql.Identifier(online_db)))
        print(f"{args.rows:,} rows each in kv_cache and training_metrics; analyst query holds them {args.analyst_seconds:.0f} s")

        def plain() -> None:
            with psycopg.connect(server.url(plain_db)) as conn:
                conn.execute(PLAIN_DDL)

        plain_stall, plain_time, plain_writers = scenario(server.url(plain_db), ids, args.analyst_seconds, plain)
        with tempfile.TemporaryDirectory() as directory:
            project = edited_project(Path(directory))

            def online() -> None:
                dbt.run_dbt(["run", "--select", "kv_cache", "training_metrics", "--quiet"], env=env, project=project)

            online_stall, online_time, online_writers = scenario(server.url(online_db), ids, args.analyst_seconds, online)
            with psycopg.connect(server.url(online_db)) as conn:
                made = conn.execute("""select count(*) from pg_indexes where indexname in
                                       ('kv_cache_created_at_bench_idx', 'training_metrics_step_bench_idx')""").fetchone()[0]
                checks = conn.execute("""select count(distinct conname) from pg_constraint where convalidated and conname in
                                        ('kv_cache_size_bytes_bench_check', 'training_metrics_step_bench_check')""").fetchone()[0]
            assert (made, checks) == (2, 2), f"the online build made {made} of 2 indexes and {checks} of 2 valid checks"
        print(f"{'plain DDL, one transaction':34s} longest writer stall {plain_stall:7.2f} s   change took {plain_time:7.2f} s   "
              f"writes {sum(plain_writers.counts):,}")
        print(f"{'online build (dbt run)':34s} longest writer stall {online_stall:7.2f} s   build took  {online_time:7.2f} s   "
              f"writes {sum(online_writers.counts):,}")
        report(f"online DDL build: longest writer stall (4 writers, analyst query, {args.rows:,}-row tables)", online_stall, "s",
               "plain DDL", plain_stall, target="no stall > 1 s", met=online_stall < 1.0, higher_is_better=False)
        report("online DDL build: time of the change (dbt run of the two models)", online_time, "s",
               "plain DDL", plain_time, target="reported, no target", met=True, higher_is_better=False)
    finally:
        embedded.drop_database(server, plain_db)
        embedded.drop_database(server, online_db)


if __name__ == "__main__":
    main()
