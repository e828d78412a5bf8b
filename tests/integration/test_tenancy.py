"""Issue 11 (library side): acting as a tenant, and every library write path as the application role with
row-level security on.

The connections log in as a member of arc_halo_app that owns nothing (conftest.app_login), so the
policies apply as they do to an application's login. The tenant is set per transaction only: it never
outlives a transaction, and a pool hands nothing of one borrower to the next.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from arc_halo import bulk, db, hf, inference, sample, tensors, training
from arc_halo.errors import ArcHaloError, InvalidInputError, NotFoundError
from rows import insert_model
from test_model_import import llama_tensors, write_sharded

# Every table that holds a tenant's rows directly or under a parent (tensor_dtypes is shared).
TENANT_DATA = ("models", "transformer_layers", "attention_heads", "tensor_metadata", "tensor_data", "model_weights",
               "embeddings", "training_sessions", "training_metrics", "training_metrics_latest", "optimizer_state",
               "model_checkpoints", "inference_sessions", "inference_metrics", "kv_cache", "activation_cache",
               "attention_patterns", "cognitive_fusion_reactors", "fusion_operations")


@pytest.fixture
def app_url(test_server, rls_copy, app_login) -> str:
    """A database built with row-level security on, reached as the application's login."""
    return make_conninfo(test_server.url(rls_copy), user=app_login)


def visible(conn: psycopg.Connection, table: str) -> int:
    return conn.execute(f"select count(*) from {table}").fetchone()[0]


def test_tenant_lasts_for_each_transaction_and_never_for_the_session(app_url) -> None:
    with db.connect(app_url, tenant="A") as conn:
        insert_model(conn, "model-A")
        conn.commit()
        assert conn.execute("select model_name, tenant_id from models").fetchall() == [("model-A", "A")]
        conn.rollback()
        with conn.transaction():  # an explicit transaction acts as the tenant too
            assert visible(conn, "models") == 1
        # outside a transaction block no BEGIN would set the tenant: a tenant connection refuses autocommit
        with pytest.raises(InvalidInputError, match="cannot be autocommit"):
            conn.autocommit = True
        assert conn.execute("select current_setting('app.tenant_id', true)").fetchone()[0] == "A"
        conn.rollback()
    with psycopg.connect(app_url, autocommit=True) as plain:  # the session itself never holds a tenant
        assert plain.execute("select current_setting('app.tenant_id', true)").fetchone()[0] in (None, "")
        assert visible(plain, "models") == 0
    with pytest.raises(InvalidInputError, match="cannot be autocommit"):
        db.connect(app_url, autocommit=True, tenant="A")


def test_tenant_block_is_one_transaction(app_url) -> None:
    with db.connect(app_url) as conn:
        with db.tenant(conn, "A"):
            insert_model(conn, "in-block")
        assert visible(conn, "models") == 0  # committed, and the tenant ended with the block
        conn.rollback()
        with db.tenant(conn, "A"):
            assert conn.execute("select model_name from models").fetchall() == [("in-block",)]
        with db.tenant(conn, "B"):
            assert visible(conn, "models") == 0
        conn.execute("select 1")  # an open transaction: a tenant set now would outlive the block
        with pytest.raises(InvalidInputError, match="starts its own transaction"), db.tenant(conn, "B"):
            pass


def test_pool_hands_nothing_of_one_borrower_to_the_next(app_url) -> None:
    with db.connect(app_url) as conn:
        for name in ("A", "B"):
            with db.tenant(conn, name):
                insert_model(conn, f"model-{name}")
    with db.pool(app_url, min_size=1, max_size=1) as pool:
        with pool.connection() as conn:
            conn.execute("set app.tenant_id = 'A'")  # the old advice: a session-level SET
            assert visible(conn, "models") == 1
        with pool.connection() as conn:  # the same server connection, reset when it came back
            assert visible(conn, "models") == 0
            conn.commit()
            with db.tenant(conn, "B"):
                assert conn.execute("select model_name from models").fetchall() == [("model-B",)]
    with db.pool(app_url, max_size=1, tenant="B") as pool, pool.connection() as conn:
        assert conn.execute("select model_name from models").fetchall() == [("model-B",)]


def test_copy_is_direct_for_the_owner_and_staged_for_the_app(test_server, rls_copy, app_url) -> None:
    with db.connect(test_server.url(rls_copy)) as owner:
        assert bulk.row_security_applies(owner, "training_metrics") is False
    with db.connect(app_url, tenant="A") as app:
        assert bulk.row_security_applies(app, "training_metrics") is True


def test_every_library_write_path_works_as_the_app_with_rls_on(test_server, rls_copy, app_url, tmp_path) -> None:
    rng = np.random.default_rng(3)
    weights = rng.standard_normal((40, 30)).astype(np.float32)
    write_sharded(tmp_path / "tiny-llama", llama_tensors())
    with db.connect(app_url, tenant="A") as conn:
        imported = hf.import_model(conn, tmp_path / "tiny-llama")
        model_id = imported.model_id
        layer_id = conn.execute("select layer_id from transformer_layers where model_id = %s order by layer_index limit 1",
                                (model_id,)).fetchone()[0]
        conn.commit()
        session = training.start_session(conn, model_id, "rls-run", total_steps=100)
        with training.MetricLogger(conn, session) as logger:
            for step in range(100):
                logger.log_many({"loss": 1.0 / (step + 1), "accuracy": step / 100}, step)
        tensor_id = tensors.put(conn, weights, "w", chunk_bytes=1000)  # five chunks
        assert np.array_equal(tensors.get(conn, tensor_id), weights)
        checkpoint = training.save_checkpoint(conn, model_id, session, 50, {"w": weights},
                                              optimizer_state={"w": {"exp_avg": weights * 0.1}}, optimizer_type="adam")
        restored = training.load_checkpoint(conn, checkpoint)
        assert np.array_equal(restored.weights["w"], weights)
        assert np.array_equal(restored.optimizer_state["w"]["exp_avg"], weights * 0.1)
        request = inference.start_session(conn, model_id)
        inference.log_metrics(conn, request, {"latency_ms": 12.5, "tokens_per_second": 80.0})
        kv = rng.standard_normal((2, 4, 8)).astype(np.float16)
        inference.put_kv(conn, request, layer_id, kv, kv, position_start=0, ttl=timedelta(minutes=5))
        assert np.array_equal(inference.get_kv(conn, request, layer_id)[0].keys, kv)
        inference.put_activation(conn, request, layer_id, "mlp_out", kv[0], position_start=0)
        inference.record_attention(conn, request, layer_id, 0, np.full((4, 4), 0.25))
        assert sample.load(conn) is not None
        conn.commit()
        assert conn.execute("select count(*) from training_metrics where training_session_id = %s",
                            (session,)).fetchone()[0] == 200
        assert conn.execute("select value from training_metrics_latest where training_session_id = %s"
                            " and metric_name = 'loss'", (session,)).fetchone()[0] == pytest.approx(0.01)
        assert conn.execute("select count(*) from inference_metrics where inference_session_id = %s",
                            (request,)).fetchone()[0] == 2
        seen = {table: visible(conn, table) for table in TENANT_DATA}
        assert all(seen.values()), seen
    with db.connect(app_url, tenant="B") as other:
        assert {table: visible(other, table) for table in TENANT_DATA} == dict.fromkeys(TENANT_DATA, 0)
    with db.connect(test_server.url(rls_copy)) as owner:  # the owner sees every tenant: all of it is A's
        assert owner.execute("select distinct tenant_id from models").fetchall() == [("A",)]
        assert owner.execute("select distinct tenant_id from tensor_metadata").fetchall() == [("A",)]
        assert {table: visible(owner, table) for table in TENANT_DATA} == seen


def test_bulk_write_under_another_tenants_parent_is_refused_and_writes_nothing(test_server, rls_copy, app_url) -> None:
    with db.connect(app_url, tenant="A") as conn:
        session = training.start_session(conn, insert_model(conn, "model-A"), "a-run")
    with db.connect(app_url, tenant="B") as conn:
        with pytest.raises(NotFoundError, match=f"no training session {session}"):  # invisible to tenant B
            training.MetricLogger(conn, session)
        conn.rollback()
        with pytest.raises(ArcHaloError, match="row-level security|for this tenant"), conn.transaction():
            training.copy_metric_rows(conn, [(session.bytes, "loss", 1, None, 1.0, datetime.now(timezone.utc))])
        conn.rollback()
        with pytest.raises(NotFoundError, match="does not exist for this tenant"):
            inference.log_metrics(conn, session, {"latency_ms": 1.0})
    with db.connect(test_server.url(rls_copy)) as owner:
        assert visible(owner, "training_metrics") == 0
        assert visible(owner, "inference_metrics") == 0
