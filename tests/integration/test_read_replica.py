"""Analysts and monitors on a read replica: a real hot standby streamed from the embedded primary
(tests/integration/standby.py) answers everything they use, replication lag is visible, and the
library's read-only connection refuses writes in one line."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import sql

from arc_halo import config, hf, replica, sample, search
from arc_halo.errors import ArcHaloError, ReadOnlyConnectionError

SPEC_QUERIES = (
    "select * from v_model_architecture where model_name = 'gpt-fusion-1'",
    "select * from v_training_progress where status = 'running'",
    "select * from v_reactor_status where status = 'active'",
)


@pytest.fixture(scope="module")
def replicated(test_server, template_database, hot_standby):
    """A built database holding the sample data, replayed on the standby: (primary url, standby url, model id)."""
    name = test_server.create_database(template=template_database)
    try:
        with psycopg.connect(test_server.url(name)) as conn:
            model_id = sample.load(conn)
            conn.commit()
        hot_standby.wait_for_replay()
        yield test_server.url(name), hot_standby.url(name), model_id
    finally:
        test_server.drop_database(name)


def rows(url: str, query: str, params=None) -> list[tuple]:
    with psycopg.connect(url) as conn:
        conn.execute("set search_path = public, analytics")
        return sorted(conn.execute(query, params).fetchall(), key=repr)  # same rows, whatever the plan's order


def test_the_standby_is_a_standby_with_the_primary_s_rows(replicated):
    primary, standby, _ = replicated
    assert rows(standby, "select pg_is_in_recovery()") == [(True,)]
    assert rows(primary, "select pg_is_in_recovery()") == [(False,)]
    count = "select count(*) from models"
    assert rows(standby, count) == rows(primary, count) != [(0,)]


@pytest.mark.parametrize("query", SPEC_QUERIES)
def test_the_specification_s_views_answer_on_the_standby_as_on_the_primary(replicated, query):
    primary, standby, _ = replicated
    answer = rows(standby, query)
    assert answer, f"no rows on the standby for {query}"
    assert answer == rows(primary, query)


def test_the_specification_s_functions_answer_on_the_standby(replicated):
    primary, standby, model_id = replicated
    for query in ("select * from calculate_model_parameters(%s)", "select get_latest_checkpoint(%s)"):
        answer = rows(standby, query, (model_id,))
        assert answer == rows(primary, query, (model_id,)) and answer[0][0] is not None


def test_every_analytics_relation_answers_on_the_standby(replicated):
    primary, standby, _ = replicated
    names = [name for (name,) in rows(standby, "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
                                               " where n.nspname = 'analytics' and c.relkind in ('v', 'm', 'r') order by 1")]
    assert {"training_health_overview", "cache_efficiency", "replication_lag"} <= set(names)
    for name in names:
        if name == "replication_lag":  # differs by design: it describes the server it runs on
            continue
        query = sql.SQL("select count(*) from analytics.{}").format(sql.Identifier(name)).as_string()
        assert rows(standby, query) == rows(primary, query), name


def _render_analysis(path: Path) -> str:
    # Analyses only use ref(); both schemas are on the search path of `rows`.
    return re.sub(r"\{\{\s*ref\('(\w+)'\)\s*\}\}", r"\1", path.read_text())


def test_the_dashboards_queries_in_analyses_answer_on_the_standby(replicated):
    primary, standby, _ = replicated
    paths = sorted((config.project_dir() / "analyses").glob("*.sql"))
    assert len(paths) >= 5
    for path in paths:
        query = _render_analysis(path)
        assert "{{" not in query, f"{path.name} uses more than ref()"
        assert rows(standby, query) == rows(primary, query), path.name


def test_vector_search_progress_and_export_read_from_a_replica_connection(replicated, tmp_path):
    primary, standby, model_id = replicated
    with replica.connect_replica(standby) as reader, psycopg.connect(primary) as writer:
        from pgvector.psycopg import register_vector

        register_vector(writer)
        found = search.nearest_to_token(reader, model_id, 42, k=5)
        assert len(found) == 5 and found == search.nearest_to_token(writer, model_id, 42, k=5)
        exact = search.nearest(reader, np.ones(384, dtype=np.float32), k=3, exact=True)
        assert len(exact) == 3
        progress = reader.execute("select training_session_id, current_step from v_training_progress").fetchall()
        assert progress and progress == writer.execute(
            "select training_session_id, current_step from v_training_progress").fetchall()
        path = hf.export_model(reader, model_id, tmp_path / "from-standby.safetensors")
        assert path.stat().st_size > 0
        assert replica.lag(reader).is_standby


def test_replication_lag_is_zero_on_the_primary_and_shows_a_paused_standby_behind(replicated, hot_standby):
    primary, standby, _ = replicated
    with psycopg.connect(primary) as conn:
        on_primary = replica.lag(conn)
    assert (on_primary.is_standby, on_primary.replay_lag_seconds, on_primary.replay_lag_bytes) == (False, 0, 0)
    with psycopg.connect(hot_standby.url("postgres"), autocommit=True) as control:
        control.execute("select pg_wal_replay_pause()")
        try:
            marker = f"lag-probe-{uuid.uuid4().hex[:8]}"
            with psycopg.connect(primary) as conn:
                conn.execute("update models set description = %s where model_name = 'gpt-fusion-1'", (marker,))
                conn.commit()
            hot_standby.wait_for_receipt()
            with psycopg.connect(standby) as conn:
                behind = replica.lag(conn)
                seen = conn.execute("select count(*) from models where description = %s", (marker,)).fetchone()[0]
            assert behind.is_standby and behind.replay_lag_bytes > 0 and behind.replay_lag_seconds > 0
            assert seen == 0
        finally:
            control.execute("select pg_wal_replay_resume()")
    hot_standby.wait_for_replay()
    with psycopg.connect(standby) as conn:
        caught_up = replica.lag(conn)
        seen = conn.execute("select count(*) from models where description = %s", (marker,)).fetchone()[0]
    assert seen == 1 and caught_up.replay_lag_bytes == 0


@pytest.mark.parametrize("where", ["standby", "primary"])
def test_a_write_on_a_replica_connection_fails_in_one_line_and_writes_nothing(replicated, where, monkeypatch):
    primary, standby, _ = replicated
    monkeypatch.delenv(replica.REPLICA_URL_VARIABLE, raising=False)
    monkeypatch.setenv("ARC_HALO_DATABASE_URL", primary)
    # On the standby the server refuses; without a replica configured, the primary in READ ONLY transactions.
    with replica.connect_replica(standby if where == "standby" else None) as conn:
        with pytest.raises(ReadOnlyConnectionError) as caught:
            conn.execute("update models set description = 'written' where model_name = 'gpt-fusion-1'")
        conn.rollback()
        with pytest.raises(ReadOnlyConnectionError):
            with conn.cursor().copy("copy models (model_name) from stdin") as copy:
                copy.write_row(("x",))
    message = str(caught.value)
    assert "\n" not in message and "read-only" in message and "arc_halo.db.connect()" in message
    assert rows(primary, "select count(*) from models where description = 'written'") == [(0,)]


def test_the_replica_url_variable_is_checked_like_any_database_url(monkeypatch):
    monkeypatch.setenv(replica.REPLICA_URL_VARIABLE, "postgresql://analyst@replica.example.com/arc_halo?sslmode=disable")
    with pytest.raises(ArcHaloError) as caught:
        replica.replica_url()
    assert "ARC_HALO_REPLICA_URL" in str(caught.value) and "sslmode" in str(caught.value)
