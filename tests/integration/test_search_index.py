"""Issue 19 §2 and §4: a model's approximate index is its partition's own, chosen from the data and built
after the import commits, concurrently; search says whether it was exact or approximate, uses the index
only once it is valid, and ignores (then rebuilds) what an interrupted build left; the CLI shows and
builds it."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest

from arc_halo import embeddings, search
from arc_halo.cli.model_commands import _index_summary
from rows import insert_model

ARC = str(Path(sys.executable).parent / "arc-halo")


def load_random(conn: psycopg.Connection, name: str, rows: int, width: int, seed: int) -> tuple[uuid.UUID, np.ndarray]:
    """A model whose embeddings are `rows` random token vectors of `width` (loaded, not indexed); its id and them."""
    table = np.random.default_rng(seed).standard_normal((rows, width)).astype(np.float32)
    model_id = insert_model(conn, name, hidden=width, heads=8)
    embeddings.bulk_load(conn, model_id, [("token", table, None)])
    return model_id, table


def progress_of(conn: psycopg.Connection, partition: str) -> str | None:
    row = conn.execute("select phase from pg_stat_progress_create_index where relid = %s::regclass",
                       (partition,)).fetchone()
    return row[0] if row else None


def test_index_is_built_after_the_load_and_used_only_once_valid(test_server, built_copy, caplog) -> None:
    url = test_server.url(built_copy)
    rng = np.random.default_rng(4)
    table = rng.standard_normal((8_000, 384)).astype(np.float32)  # random vectors: a slow enough build to interrupt
    with psycopg.connect(url, autocommit=True) as conn:
        model_id = insert_model(conn, "late-index", hidden=384, heads=12)
        embeddings.bulk_load(conn, model_id, [("token", table, None)])
        # Visible and exactly searchable as soon as the load commits; no index yet, and the result says so.
        status = embeddings.index_status(conn, model_id)
        assert (status.state, status.rows, status.plan.kind) == ("missing", 8_000, "vector")
        with caplog.at_level(logging.INFO, logger="arc_halo.search"):
            found = search.nearest(conn, table[5], k=10, model_id=model_id)
        assert found.exact and found.method == "exact" and found[0][3] == 5 and "not built" in found.reason
        assert "exact search of model" in caplog.text

        # A build, interrupted: while it runs, readers and writers go on; killed, it leaves an INVALID index.
        errors = []
        builder = threading.Thread(target=lambda: _build_catching(url, model_id, errors))
        builder.start()
        try:
            deadline = time.monotonic() + 120
            while progress_of(conn, status.partition) is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert progress_of(conn, status.partition) is not None, "the build never started"
            during = search.nearest(conn, table[9], k=3, model_id=model_id)
            assert during.exact and during[0][3] == 9 and embeddings.index_status(conn, model_id).state == "building"
            conn.execute("insert into embeddings (model_id, embedding_type, embedding_index, dimensions, embedding)"
                         " values (%s, 'position', 0, 384, %s::vector)", (model_id, str(table[0].tolist())))
            assert progress_of(conn, status.partition) is not None, "the reader or the writer waited for the build"
            conn.execute("select pg_terminate_backend(pid) from pg_stat_progress_create_index where relid = %s::regclass",
                         (status.partition,))
        finally:
            builder.join(timeout=300)
        assert errors, "the build was meant to be interrupted"
        broken = embeddings.index_status(conn, model_id)
        assert broken.state == "invalid" and broken.index is not None and not broken.valid
        found = search.nearest(conn, table[5], k=10, model_id=model_id)
        assert found.exact and "interrupted" in found.reason and found[0][3] == 5

        # The next build drops the INVALID index and builds it again; search then uses it.
        ready = embeddings.build_index(conn, model_id)
        assert ready.state == "ready" and ready.valid
        assert conn.execute("select count(*) from pg_index where indrelid = %s::regclass and not indisvalid",
                            (ready.partition,)).fetchone()[0] == 0
        found = search.nearest(conn, table[5], k=10, model_id=model_id)
        assert found.method == "hnsw" and not found.exact and found[0][3] == 5
        # Beside the graph, a stored vector equal to the query is found by one index lookup.
        assert ready.exact_match
        plan = "\n".join(row[0] for row in conn.execute(
            f"explain select 1 from embeddings where model_id = %s and {embeddings.SAME_VECTOR}"
            " = hashtextextended(%s::vector::text, 0)", (model_id, str(table[5].tolist()))))
        assert embeddings.SAME_SUFFIX in plan, plan
        # The graph's answers agree with exact search: recall@10 over 20 queries (one query alone is noise; a
        # parallel HNSW build differs from run to run).
        overlaps = [len({row[0] for row in search.nearest(conn, table[row], k=10, model_id=model_id)}
                        & {row[0] for row in search.nearest(conn, table[row], k=10, model_id=model_id, exact=True)})
                    for row in range(20)]
        assert sum(overlaps) / (10 * len(overlaps)) >= 0.9, overlaps
        oid = conn.execute("select %s::regclass::oid", (ready.index,)).fetchone()[0]
        assert embeddings.build_index(conn, model_id).index == ready.index  # nothing to do
        assert conn.execute("select %s::regclass::oid", (ready.index,)).fetchone()[0] == oid


def _build_catching(url: str, model_id, errors: list) -> None:
    try:
        with psycopg.connect(url) as conn:
            embeddings.build_index(conn, model_id)
    except psycopg.OperationalError as error:
        errors.append(error)


@pytest.mark.parametrize(("width", "kind", "expression", "method"), [
    (1536, "vector", "(embedding)::vector(1536)", "hnsw"),
    (2560, "halfvec", "(embedding)::halfvec(2560)", "hnsw-halfvec+rerank"),
    (4608, "bit", "(binary_quantize(embedding))::bit(4608)", "hnsw-bit+rerank"),
])
def test_each_width_gets_the_index_pgvector_can_build(committing_db, monkeypatch, width, kind, expression, method) -> None:
    db = committing_db  # commits: a private database, not the shared one
    monkeypatch.setattr(embeddings, "EXACT_BELOW_ROWS", 100)  # index partitions this small (the default: thousands)
    db.autocommit = True
    rng = np.random.default_rng(width)
    table = rng.standard_normal((400, width)).astype(np.float32)
    model_id = insert_model(db, f"wide-{width}", hidden=width, heads=8)
    embeddings.bulk_load(db, model_id, [("token", table, None)])
    status = embeddings.build_index(db, model_id)
    assert status.state == "ready" and status.plan.kind == kind
    definition = db.execute("select pg_get_indexdef(%s::regclass)", (status.index,)).fetchone()[0]
    assert expression in definition and "USING hnsw" in definition, definition
    query = table[17] + 0.05 * rng.standard_normal(width).astype(np.float32)
    found = search.nearest(db, query, k=10, model_id=model_id)
    exact = search.nearest(db, query, k=10, model_id=model_id, exact=True)
    assert found.method == method and exact.method == "exact"
    assert found[0][3] == 17
    # Candidates re-ranked on the full vectors: the distances are the exact ones, whatever the index's type.
    assert [row[5] for row in found][:5] == pytest.approx([row[5] for row in exact][:5], abs=1e-6)


def test_small_partitions_are_searched_exactly_and_say_why(committing_db) -> None:
    db = committing_db  # commits: a private database, not the shared one
    db.autocommit = True
    model_id, table = load_random(db, "small", 300, 64, seed=1)
    status = embeddings.build_index(db, model_id)
    assert status.state == "exact" and status.index is None
    found = search.nearest(db, table[3], k=5, model_id=model_id)
    assert found.exact and "below" in found.reason and found[0][3] == 3
    # Rows written straight into embeddings wait in the default partition (until a build splits them out),
    # and are found through their model all the same, within it and across models.
    straight = insert_model(db, "straight", hidden=64, heads=8)
    db.execute("insert into embeddings (model_id, embedding_type, embedding_index, dimensions, embedding)"
               " values (%s, 'token', 0, 64, %s::vector)", (straight, str((table[3] * 2).tolist())))
    assert embeddings.partition_of(db, straight) is None
    found = search.nearest(db, table[3], k=1, model_id=straight)
    assert found.exact and "no partition" in found.reason and found[0][1] == straight
    across = search.nearest(db, table[3], k=2)
    assert {row[1] for row in across} == {model_id, straight} and across.exact


def test_cli_shows_and_builds_the_index(test_server, built_copy) -> None:
    url = test_server.url(built_copy)
    env = {**os.environ, "ARC_HALO_DATABASE_URL": url}
    with psycopg.connect(url, autocommit=True) as conn:
        model_id = insert_model(conn, "cli-index", hidden=64, heads=8)
        rows = np.random.default_rng(2).standard_normal((embeddings.EXACT_BELOW_ROWS, 64)).astype(np.float32)
        embeddings.bulk_load(conn, model_id, [("token", rows, None)])

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([ARC, *args], env=env, capture_output=True, text=True, timeout=600)

    listed = cli("model", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if "cli-index" in line)
    assert line.split("\t")[-1] == "missing", line
    built = cli("model", "index", "cli-index")
    assert built.returncode == 0, built.stderr
    assert f"index of {model_id}: ready (hnsw, m=16, {embeddings.EXACT_BELOW_ROWS:,} vectors) (" in built.stdout
    line = next(line for line in cli("model", "list").stdout.splitlines() if "cli-index" in line)
    assert line.split("\t")[-1] == "ready", line
    with psycopg.connect(url, autocommit=True) as conn:  # an open transaction would hold the build up
        before = conn.execute("select %s::regclass::oid", (embeddings.index_status(conn, model_id).index,)).fetchone()[0]
        assert "ready" in cli("model", "index", "--rebuild", str(model_id)).stdout
        after = conn.execute("select %s::regclass::oid", (embeddings.index_status(conn, model_id).index,)).fetchone()[0]
    assert after != before
    missing = cli("model", "index", "no-such-model")
    assert missing.returncode == 2 and missing.stderr.strip().startswith("arc-halo: error: no model 'no-such-model'")
    assert "Traceback" not in missing.stderr


def test_the_migration_drops_the_partitioned_per_width_indexes(test_server, built_copy) -> None:
    """A database built before this change has partitioned HNSW indexes per configured width, which made
    every load build its share before committing; migration 20261206170000 drops them and their shares."""
    migration = (Path(__file__).resolve().parents[2] / "migrations"
                 / "20261206170000_drop_partitioned_embedding_hnsw_indexes.sql").read_text()
    hnsw_count = """select count(*) from pg_index join pg_class on pg_class.oid = indexrelid
                    join pg_am on pg_am.oid = pg_class.relam
                    where amname = 'hnsw' and indrelid in (select 'embeddings'::regclass union all
                          select inhrelid from pg_inherits where inhparent = 'embeddings'::regclass)"""
    with psycopg.connect(test_server.url(built_copy), autocommit=True) as conn:
        conn.execute("create index embeddings_hnsw_cosine_384 on embeddings using hnsw"
                     " ((embedding::vector(384)) vector_cosine_ops) where dimensions = 384")
        assert conn.execute(hnsw_count).fetchone()[0] == 2  # the parent's and the default partition's share
        conn.execute(migration)
        assert conn.execute(hnsw_count).fetchone()[0] == 0
        conn.execute(migration)  # nothing left to drop: a no-op


def test_search_uses_the_index_that_exists_and_a_rebuild_makes_the_planned_one(committing_db, monkeypatch) -> None:
    """The index's kind is read from its operator class: an index an earlier plan built is searched as it
    is until a rebuild, and an HNSW index of an operator class search cannot use is never used, then
    replaced by the next build."""
    db = committing_db  # commits: a private database, not the shared one
    monkeypatch.setattr(embeddings, "EXACT_BELOW_ROWS", 100)
    db.autocommit = True
    model_id, table = load_random(db, "replanned", 400, 64, seed=5)
    assert embeddings.build_index(db, model_id).index_kind == "vector"

    planned = embeddings.plan_index
    monkeypatch.setattr(embeddings, "plan_index", lambda rows, width: dataclasses.replace(planned(rows, width), kind="halfvec"))
    status = embeddings.build_index(db, model_id)  # not a rebuild: the valid index stays, and the CLI says so
    assert (status.state, status.index_kind, status.plan.kind) == ("ready", "vector", "halfvec")
    assert _index_summary(status) == ("ready (hnsw, m=16, 400 vectors); an earlier plan's graph: --rebuild builds"
                                      " the planned one (hnsw-halfvec+rerank, m=16, ef_construction=100)")
    assert search.nearest(db, table[9], k=5, model_id=model_id).method == "hnsw"
    status = embeddings.build_index(db, model_id, rebuild=True)
    assert (status.state, status.index_kind) == ("ready", "halfvec")
    found = search.nearest(db, table[9], k=5, model_id=model_id)
    assert found.method == "hnsw-halfvec+rerank" and found[0][3] == 9

    # Someone's own L2 index in its place: valid, but not one search can order cosine distances by.
    db.execute(f"drop index {status.index}")
    db.execute(f"create index {status.index} on {status.partition} using hnsw ((embedding::vector(64)) vector_l2_ops)")
    status = embeddings.index_status(db, model_id)
    assert status.valid and status.index_kind is None and status.state == "invalid"
    found = search.nearest(db, table[9], k=5, model_id=model_id)
    assert found.exact and "cannot use" in found.reason and found[0][3] == 9
    assert embeddings.build_index(db, model_id).state == "ready"
    assert search.nearest(db, table[9], k=5, model_id=model_id).method == "hnsw-halfvec+rerank"


def test_repeated_searches_reuse_their_prepared_statements(committing_db, monkeypatch) -> None:
    """psycopg prepares a statement on its fifth run and forgets every prepared statement at a ROLLBACK:
    a search ending its own transaction with one would plan the status and search statements again on
    every call."""
    db = committing_db
    monkeypatch.setattr(embeddings, "EXACT_BELOW_ROWS", 100)
    db.autocommit = True
    model_id, table = load_random(db, "prepared", 300, 32, seed=6)
    assert embeddings.build_index(db, model_id).state == "ready"
    for row in range(7):
        assert search.nearest(db, table[row], k=3, model_id=model_id)[0][3] == row
    prepared = [row[0] for row in db.execute("select statement from pg_prepared_statements")]
    assert any("pg_stat_get_progress_info" in statement for statement in prepared), prepared
    assert any("order by embedding::vector(32) <=>" in statement for statement in prepared), prepared


@pytest.mark.parametrize(("rows", "width", "kind", "m"), [
    (4_999, 384, None, 16),       # exact below EXACT_BELOW_ROWS
    (10_000, 384, "vector", 16),
    (49_152, 576, "vector", 48),  # the denser graph from 20,000 rows (search.NARROW_MIN_M)
    (99_999, 2_000, "vector", 48),
    (100_000, 640, "halfvec", 48),  # large partitions: half the graph's bytes
    (262_144, 640, "halfvec", 48),
    (50_000, 3_072, "halfvec", 48),
    (50_000, 4_608, "bit", 48),
    (19_999, 640, "vector", 16),
])
def test_the_plan_follows_width_and_size(rows, width, kind, m) -> None:
    plan = embeddings.plan_index(rows, width)
    assert plan.kind == kind and (kind is None or plan.m == m)
