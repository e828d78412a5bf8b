"""Issue 3: cache purge, metric partitions, the latest-value structure, and HNSW use for one width."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import psycopg

from arc_halo import embeddings, lifecycle, search
from catalog import index_scanned
from rows import insert_everything, insert_model


def test_purge_removes_exactly_the_expired_rows(test_server, built_copy) -> None:
    with psycopg.connect(test_server.url(built_copy), autocommit=True) as conn:
        ids = insert_everything(conn)
        # insert_everything made one never-expiring row in each cache; add expired and future ones.
        for offset, count in (("-1 hour", 7), ("+1 hour", 3)):
            for position in range(count):
                conn.execute(
                    f"""insert into activation_cache (inference_session_id, layer_id, activation_name, position_start,
                           position_end, dtype, shape, activation_data, size_bytes, expires_at)
                       values (%s, %s, 'x', %s, %s, 'float32', '{{1}}', '\\x00000000', 4, now() + interval '{offset}')""",
                    (ids["inference"], ids["layer"], position + (100 if offset[0] == "+" else 0),
                     position + 1 + (100 if offset[0] == "+" else 0)),
                )
                conn.execute(
                    f"""insert into kv_cache (inference_session_id, layer_id, head_index, position_start, position_end,
                           dtype, shape, key_data, value_data, size_bytes, expires_at)
                       values (%s, %s, 0, %s, %s, 'float32', '{{1}}', '\\x00', '\\x00', 2, now() + interval '{offset}')""",
                    (ids["inference"], ids["layer"], position + (100 if offset[0] == "+" else 0),
                     position + 1 + (100 if offset[0] == "+" else 0)),
                )
        totals = lifecycle.purge_expired_cache(conn, batch_size=2)  # several batches
        assert totals == {"activation_cache": 7, "kv_cache": 7}
        assert conn.execute("select count(*) from activation_cache where expires_at <= now()").fetchone()[0] == 0
        assert conn.execute("select count(*) from activation_cache").fetchone()[0] == 1 + 3
        assert conn.execute("select count(*) from kv_cache").fetchone()[0] == 1 + 3
        assert lifecycle.purge_expired_cache(conn) == {"activation_cache": 0, "kv_cache": 0}


def test_partition_creation_moves_rows_out_of_default(test_server, built_copy) -> None:
    with psycopg.connect(test_server.url(built_copy), autocommit=True) as conn:
        ids = insert_everything(conn)
        far = "2031-05-17 12:00:00+00"
        conn.execute(
            "insert into training_metrics (training_session_id, metric_name, step, value, recorded_at)"
            " values (%s, 'loss', 9, 1.0, %s)", (ids["session"], far))
        assert conn.execute("select count(*) from training_metrics_default").fetchone()[0] == 1
        months = conn.execute("select (extract(year from age('2031-05-01', date_trunc('month', now()))) * 12"
                              " + extract(month from age('2031-05-01', date_trunc('month', now()))))::int").fetchone()[0]
        created = lifecycle.create_metric_partitions(conn, months_back=0, months_ahead=months)
        assert "training_metrics_p203105" in created
        assert conn.execute("select count(*) from training_metrics_default").fetchone()[0] == 0
        assert conn.execute("select count(*) from training_metrics_p203105").fetchone()[0] == 1
        assert conn.execute("select count(*) from training_metrics").fetchone()[0] == 2
        assert lifecycle.create_metric_partitions(conn, months_back=0, months_ahead=months) == []


def test_latest_metric_tracks_highest_step(db) -> None:
    ids = insert_everything(db)
    with db.cursor().copy("copy training_metrics (training_session_id, metric_name, step, value) from stdin") as copy:
        for step, value in ((5, 1.5), (3, 9.0), (7, 1.2)):
            copy.write_row((ids["session"], "loss", step, value))
    db.execute("insert into training_metrics (training_session_id, metric_name, step, value) values (%s, 'loss', 6, 5.0)",
               (ids["session"],))
    row = db.execute("select step, value from training_metrics_latest where training_session_id = %s"
                     " and metric_name = 'loss'", (ids["session"],)).fetchone()
    assert row == (7, 1.2)


METRIC_WRITER = """
import sys
import psycopg
from arc_halo import training
url, session, offset = sys.argv[1], sys.argv[2], int(sys.argv[3])
with psycopg.connect(url) as conn, training.MetricLogger(conn, session, buffer_rows=50) as logger:
    for step in range(offset, offset + 1000):
        logger.log_many({"loss": float(step), "lr": 0.1}, step=step)
"""


def test_two_processes_logging_to_one_session_lose_no_row(test_server, built_copy) -> None:
    url = test_server.url(built_copy)
    with psycopg.connect(url, autocommit=True) as conn:
        session = insert_everything(conn)["session"]
    writers = [subprocess.Popen([sys.executable, "-c", METRIC_WRITER, url, str(session), str(offset)],
                                stderr=subprocess.PIPE, text=True) for offset in (10_000, 20_000)]
    for writer in writers:
        assert writer.wait(timeout=300) == 0, writer.stderr.read()
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from training_metrics where training_session_id = %s and step >= 10000",
                            (session,)).fetchone()[0] == 2 * 1000 * 2
        assert conn.execute("select step from training_metrics_latest where training_session_id = %s"
                            " and metric_name = 'loss'", (session,)).fetchone()[0] == 20_999


def test_session_delete_and_metric_insert_race_like_a_foreign_key(test_server, built_copy) -> None:
    """The statement-level session check locks the sessions FOR KEY SHARE, as a foreign key would: a
    delete waits for the metrics' transaction and then removes them too; metrics for a session whose
    delete is in flight wait for it and are then refused. No orphan either way."""
    url = test_server.url(built_copy)
    with psycopg.connect(url, autocommit=True) as conn:
        ids = insert_everything(conn)
        model = ids["model"]
        first = conn.execute("insert into training_sessions (model_id, session_name) values (%s, 'race-1')"
                             " returning training_session_id", (model,)).fetchone()[0]
        second = conn.execute("insert into training_sessions (model_id, session_name) values (%s, 'race-2')"
                              " returning training_session_id", (model,)).fetchone()[0]
    insert = "insert into training_metrics (training_session_id, metric_name, step, value) values (%s, 'loss', 1, 1.0)"
    outcome: dict[str, object] = {}

    def delete_session(session) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            outcome["deleted"] = conn.execute("delete from training_sessions where training_session_id = %s",
                                              (session,)).rowcount

    with psycopg.connect(url) as writer:  # metrics first, delete second
        writer.execute(insert, (first,))
        deleter = threading.Thread(target=delete_session, args=(first,))
        deleter.start()
        deleter.join(timeout=1.0)
        assert deleter.is_alive(), "the delete must wait for the open metrics transaction"
        writer.commit()
        deleter.join(timeout=30)
    assert outcome["deleted"] == 1

    with psycopg.connect(url) as deleting:  # delete first, metrics second
        deleting.execute("delete from training_sessions where training_session_id = %s", (second,))

        def insert_metric() -> None:
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(insert, (second,))
            except psycopg.errors.ForeignKeyViolation as exc:
                outcome["refused"] = exc.diag.constraint_name

        inserter = threading.Thread(target=insert_metric)
        inserter.start()
        inserter.join(timeout=1.0)
        assert inserter.is_alive(), "the metrics must wait for the open delete"
        deleting.commit()
        inserter.join(timeout=30)
    assert outcome["refused"] == "training_metrics_training_session_id_fkey"
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from training_metrics where training_session_id in (%s, %s)",
                            (first, second)).fetchone()[0] == 0
        assert conn.execute("select count(*) from training_metrics_latest where training_session_id in (%s, %s)",
                            (first, second)).fetchone()[0] == 0


def test_nearest_embeddings_of_each_width_use_their_partitions_index(committing_db, monkeypatch) -> None:
    """Enough rows that the planner chooses the index on cost, with no planner settings forced."""
    db = committing_db  # commits: a private database, not the shared one
    rows_per_width = 2000
    monkeypatch.setattr(embeddings, "EXACT_BELOW_ROWS", 1000)  # index partitions this small (the default: thousands)
    db.autocommit = True
    rng = np.random.default_rng(7)
    models = {384: insert_model(db, "w384", hidden=384, heads=6), 768: insert_model(db, "w768", hidden=768, heads=12)}
    for width, model_id in models.items():
        embeddings.bulk_load(db, model_id, [("token", rng.standard_normal((rows_per_width, width)), None)])
        assert embeddings.build_index(db, model_id).state == "ready"
    for width, model_id in models.items():
        status = embeddings.index_status(db, model_id)
        definition = db.execute("select pg_get_indexdef(%s::regclass)", (status.index,)).fetchone()[0]
        assert f"(embedding)::vector({width})" in definition and "vector_cosine_ops" in definition, definition
        query = f"""
            select embedding_id from embeddings
            where model_id = %s and dimensions = {width}
            order by embedding::vector({width}) <=> %s::vector({width})
            limit 10"""
        probe = rng.standard_normal(width).astype(np.float32)
        plan = "\n".join(row[0] for row in db.execute("explain " + query, (model_id, probe)))
        assert index_scanned(db, plan) == status.index, plan
        found = search.nearest(db, probe, k=10, model_id=model_id)
        assert len(found) == 10 and found.method == "hnsw"


def test_lifecycle_through_dbt_run_operation_and_cli(test_server, built_copy) -> None:
    """The same operations as dbt run-operations and as arc-halo commands (the ci target)."""
    import os
    from pathlib import Path

    from arc_halo import dbt, environments

    url = test_server.url(built_copy)
    with psycopg.connect(url, autocommit=True) as conn:
        ids = insert_everything(conn)
        conn.execute("update kv_cache set expires_at = now() - interval '1 minute' where inference_session_id = %s",
                     (ids["inference"],))
    env = environments.url_environment(url)
    purge = dbt.run_dbt(["run-operation", "purge_expired_cache", "--args", "{batch_size: 1}"], env=env,
                        check=False, capture=True)
    assert purge.returncode == 0, purge.stdout[-2000:]
    assert "purged expired rows: activation_cache=0 kv_cache=1" in purge.stdout
    partitions = dbt.run_dbt(["run-operation", "create_metric_partitions", "--args", "{months_back: 0, months_ahead: 9}"],
                             env=env, check=False, capture=True)
    assert partitions.returncode == 0 and "created partitions:" in partitions.stdout
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from kv_cache").fetchone()[0] == 0
        count_before = conn.execute("select count(*) from pg_inherits where inhparent = 'training_metrics'::regclass").fetchone()[0]
    cli = subprocess.run([str(Path(sys.executable).parent / "arc-halo"), "partitions", "create", "--months-ahead", "12"],
                         env={**os.environ, "ARC_HALO_DATABASE_URL": url}, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    with psycopg.connect(url) as conn:
        count_after = conn.execute("select count(*) from pg_inherits where inhparent = 'training_metrics'::regclass").fetchone()[0]
    assert count_after == count_before + 3  # months 10, 11 and 12 ahead
    cli = subprocess.run([str(Path(sys.executable).parent / "arc-halo"), "cache", "purge"],
                         env={**os.environ, "ARC_HALO_DATABASE_URL": url}, capture_output=True, text=True)
    assert cli.returncode == 0 and cli.stdout.strip() == "purged expired rows: activation_cache=0 kv_cache=0"
