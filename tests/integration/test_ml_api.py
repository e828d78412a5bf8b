"""Issue 5 (in progress): the inference, fusion, similarity-search and pooling APIs against real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from arc_halo import db as database
from arc_halo import errors, fusion, inference, search
from arc_halo.errors import ArcHaloError
from rows import insert_everything, insert_model


def test_kv_cache_round_trip_replace_and_ttl(db) -> None:
    ids = insert_everything(db)
    session = inference.start_session(db, ids["model"], {"temperature": 0.7}, prompt_tokens=12)
    rng = np.random.default_rng(1)
    keys, values = rng.standard_normal((4, 16, 8)).astype(np.float16), rng.standard_normal((4, 16, 8)).astype(np.float16)
    inference.put_kv(db, session, ids["layer"], keys, values, position_start=0)
    inference.put_kv(db, session, ids["layer"], keys[:, :8], values[:, :8], position_start=16)
    (first, second) = inference.get_kv(db, session, ids["layer"])
    assert first.keys.tobytes() == keys.tobytes() and first.values.tobytes() == values.tobytes()
    assert (first.position_start, first.position_end, second.position_start, second.position_end) == (0, 16, 16, 24)
    inference.put_kv(db, session, ids["layer"], values, keys, position_start=0)  # replace, not duplicate
    assert inference.get_kv(db, session, ids["layer"])[0].keys.tobytes() == values.tobytes()
    assert db.execute("select hit_count from kv_cache where inference_session_id = %s and position_start = 0",
                      (session,)).fetchone()[0] == 2
    inference.put_kv(db, session, ids["layer"], keys, values, position_start=64, ttl=timedelta(seconds=1))
    # now() is the transaction's start time here, so let the entry's time pass instead of the clock's
    db.execute("update kv_cache set expires_at = now() - interval '1 second' where position_start = 64")
    assert [e.position_start for e in inference.get_kv(db, session, ids["layer"])] == [0, 16]  # expired one hidden
    with pytest.raises(ValueError, match="must match"):
        inference.put_kv(db, session, ids["layer"], keys, values[:, :2], position_start=99)


def test_attention_patterns_carry_their_summaries(db) -> None:
    ids = insert_everything(db)
    uniform = np.full((4, 4), 0.25)
    inference.record_attention(db, ids["inference"], ids["layer"], 3, uniform)
    entropy, max_weight = db.execute("select mean_entropy, max_weight from attention_patterns where head_index = 3").fetchone()
    assert entropy == pytest.approx(np.log(4)) and max_weight == pytest.approx(0.25)


def test_fusion_validates_weights_and_reports_status(db) -> None:
    a, b, c = (insert_model(db, name) for name in ("fa", "fb", "fc"))
    reactor = fusion.create_reactor(db, "unit", "weighted_average", status="active")
    fusion.attach_model(db, reactor, a, 0.6, role="primary")
    fusion.attach_model(db, reactor, b, 0.4)
    with pytest.raises(ArcHaloError, match="would sum to 1.100"):
        fusion.attach_model(db, reactor, c, 0.1)
    with pytest.raises(ArcHaloError, match="within \\[0, 1\\]"):
        fusion.attach_model(db, reactor, c, 1.5)
    fusion.record_operation(db, reactor, [a, b], latency_ms=12.0)
    fusion.record_operation(db, reactor, [a], status="failed")
    fusion.add_edge(db, reactor, b, a, "verifies", 0.5)
    with pytest.raises(errors.IntegrityError, match="refused by constraint .*no_self_loop"):
        fusion.add_edge(db, reactor, a, a, "feeds")
    db.rollback()


def test_similarity_search_approximate_and_exact(db) -> None:
    model_id = insert_model(db, "search-384", hidden=384, heads=6)
    rng = np.random.default_rng(9)
    vectors = rng.standard_normal((300, 384)).astype(np.float32)
    with db.cursor().copy("copy embeddings (model_id, embedding_type, embedding_index, dimensions, embedding) from stdin") as copy:
        for index, vector in enumerate(vectors):
            copy.write_row((model_id, "token", index, 384, "[" + ",".join(f"{x:.6f}" for x in vector) + "]"))
    query = vectors[17] + 0.01
    exact = search.nearest(db, query, k=5, exact=True)
    assert exact[0][3] == 17
    approximate = search.nearest(db, query, k=5, ef_search=100)
    assert approximate[0][3] == 17
    assert search.nearest_to_token(db, model_id, 17, k=1)[0][3] == 17


def test_pool_lends_connections_with_the_vector_adapter(built_database) -> None:
    with database.pool(built_database, max_size=2) as pool, pool.connection() as conn:
        assert conn.execute("select '[1,2,3]'::vector").fetchone()[0].to_list() == [1.0, 2.0, 3.0]
