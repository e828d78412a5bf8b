"""Issue 10 §4: nearest(k) returns k rows whenever k exist, also through the HNSW index with a filter,
and leaves the caller's settings as they were, inside and outside the caller's transaction."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from arc_halo import embeddings, search
from arc_halo.errors import InvalidInputError
from catalog import index_scanned
from rows import insert_model

SETTINGS = ("enable_seqscan", "enable_sort", "enable_indexscan", "hnsw.ef_search", "hnsw.iterative_scan", "hnsw.max_scan_tuples")
ROWS_PER_MODEL = 550


def settings(conn: psycopg.Connection) -> dict[str, str]:
    return {name: conn.execute("select current_setting(%s)", (name,)).fetchone()[0] for name in SETTINGS}


def test_nearest_returns_k_rows_through_the_index_with_a_filter(committing_db, monkeypatch) -> None:
    """A model's partition holds token and position rows; asking for tokens filters the index's candidates."""
    db = committing_db  # commits: a private database, not the shared one
    monkeypatch.setattr(embeddings, "EXACT_BELOW_ROWS", 100)  # index partitions this small (the default: thousands)
    db.autocommit = True
    rng = np.random.default_rng(11)
    models = [insert_model(db, f"near-{i}", hidden=384, heads=6) for i in range(2)]
    for model_id in models:
        table = rng.standard_normal((ROWS_PER_MODEL, 384)).astype(np.float32)
        embeddings.bulk_load(db, model_id, [("token", table, None), ("position", table[::-1] + 0.01, None)])
        assert embeddings.build_index(db, model_id).state == "ready"
    db.autocommit = False
    # The caller's own settings, which must survive: no scan-and-sort, so the HNSW index answers (as it
    # does on a large table), with the filter applied to its candidates.
    db.execute("set enable_seqscan = off")
    db.execute("set enable_sort = off")
    probe = rng.standard_normal(384).astype(np.float32)
    wanted = models[0]

    # Without the iterative scan, ef_search candidates come from both kinds and the filter removes some.
    db.execute("set local hnsw.ef_search = 500")
    plain = ("select count(*) from (select 1 from embeddings where dimensions = 384 and model_id = %s"
             " and embedding_type = 'token' order by embedding::vector(384) <=> %s::vector(384) limit 500) found")
    text = "[" + ",".join(map(str, probe.tolist())) + "]"
    plan = "\n".join(row[0] for row in db.execute("explain " + plain, (wanted, text)))
    assert index_scanned(db, plan) == embeddings.index_status(db, wanted).index, plan
    plain = db.execute(plain, (wanted, text)).fetchone()[0]
    db.execute("set local hnsw.ef_search = 40")
    assert plain < 500, "the filter must remove index candidates for this test to mean anything"
    before = settings(db)

    for k in (100, 500):
        filtered = search.nearest(db, probe, k=k, model_id=wanted, embedding_type="token")
        assert filtered.method == "hnsw" and not filtered.exact
        assert len(filtered) == k and {row[1] for row in filtered} == {wanted}
        distances = [row[5] for row in filtered]
        assert distances == sorted(distances)
        exact = search.nearest(db, probe, k=k, model_id=wanted, embedding_type="token", exact=True)
        assert len(exact) == k and exact.exact
        recall = len({row[0] for row in filtered} & {row[0] for row in exact}) / k
        assert recall >= 0.9, recall
        assert len(search.nearest(db, probe, k=k)) == k
        assert settings(db) == before
    everything = search.nearest(db, probe, k=4 * ROWS_PER_MODEL + 50)
    assert len(everything) == 4 * ROWS_PER_MODEL and everything.method == "hnsw"  # all there are, each model's index


@pytest.mark.parametrize("autocommit", [True, False], ids=["autocommit", "idle-transactional"])
def test_exact_and_approximate_search_leave_no_setting_behind(built_database, autocommit) -> None:
    with psycopg.connect(built_database, autocommit=autocommit) as conn:
        conn.execute("select '[1]'::vector")  # loads pgvector, which defines the hnsw.* settings
        before = settings(conn)
        if not autocommit:
            conn.rollback()  # outside any transaction, as a caller that just committed
        for exact in (True, False):
            search.nearest(conn, np.ones(384, dtype=np.float32), k=20, exact=exact)
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            assert settings(conn) == before
            conn.rollback()
        assert settings(conn)["enable_indexscan"] == "on"


@pytest.mark.parametrize(
    ("query", "k", "message"),
    [
        (np.ones(384), 0, "k must be between 1"),
        (np.ones(384), 2.5, "k must be a whole number"),
        (np.ones(384), 10**9, "k must be between 1"),
        (np.array([]), 5, "query has 0 dimensions"),
        (np.array([1.0, np.nan]), 5, "NaN or infinite"),
        ("not numbers", 5, "query must be a vector of numbers"),
    ],
)
def test_bad_search_input_is_refused(db, query, k, message) -> None:
    with pytest.raises(InvalidInputError, match=message):
        search.nearest(db, query, k=k)
