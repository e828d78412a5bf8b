"""Issue 11: the library through a real PgBouncer in transaction mode (tests/integration/pgbouncer.py), as
the application's login with row-level security on.

PgBouncer gives every (database, user) ONE server connection here, so clients alternate on it: a
prepared statement or a setting one client leaves there, the next one meets.
"""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from arc_halo import db, inference, tensors, training
from arc_halo.conninfo import POOLED_VARIABLE, is_pooled
from rows import insert_model
from test_tenancy import TENANT_DATA, visible


@pytest.fixture
def pooled_url(pgbouncer, rls_copy, app_login) -> str:
    return pgbouncer.url(rls_copy, app_login)


def seed_tenant(url: str, tenant: str) -> dict:
    with db.connect(url, tenant=tenant, pooled=True) as conn:
        model = insert_model(conn, f"model-{tenant}")
        conn.commit()
        session = training.start_session(conn, model, f"run-{tenant}")
        request = inference.start_session(conn, model)
        tensor = tensors.put(conn, np.arange(12, dtype=np.float32), f"t-{tenant}")
        return {"model": model, "session": session, "request": request, "tensor": tensor}


def test_pooled_hosts_are_detected(monkeypatch) -> None:
    monkeypatch.delenv(POOLED_VARIABLE, raising=False)
    assert is_pooled("postgresql://u@ep-cool-1234-pooler.eu-central-1.aws.neon.tech/db?sslmode=require")
    assert not is_pooled("postgresql://u@ep-cool-1234.eu-central-1.aws.neon.tech/db?sslmode=require")
    monkeypatch.setenv(POOLED_VARIABLE, "1")
    assert is_pooled("host=127.0.0.1 port=6432 dbname=db")


def test_500_library_calls_from_two_alternating_tenants(pooled_url) -> None:
    ids = {tenant: seed_tenant(pooled_url, tenant) for tenant in ("A", "B")}
    with db.connect(pooled_url, tenant="A", pooled=True) as a, db.connect(pooled_url, tenant="B", pooled=True) as b:
        for call in range(250):
            for tenant, conn in (("A", a), ("B", b)):
                own = ids[tenant]
                inference.log_metrics(conn, own["request"], {"latency_ms": float(call)})
                training.update_progress(conn, own["session"], step=call)
                assert np.array_equal(tensors.get(conn, own["tensor"]), np.arange(12, dtype=np.float32))
                names = conn.execute("select model_name from models").fetchall()
                conn.commit()
                assert names == [(f"model-{tenant}",)]
    with db.connect(pooled_url, tenant="A", pooled=True) as conn:
        assert conn.execute("select count(*) from inference_metrics").fetchone()[0] == 250
        assert conn.execute("select current_step from training_sessions").fetchone()[0] == 249


def test_automatic_prepared_statements_break_behind_the_pooler(pooled_url) -> None:
    """Why pooled connections turn them off: the second client's statement meets the first's name."""
    with psycopg.connect(pooled_url, prepare_threshold=0) as first, \
            psycopg.connect(pooled_url, prepare_threshold=0) as second:
        first.execute("select 1").fetchone()
        first.commit()
        with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
            second.execute("select 2").fetchone()


def test_a_client_without_a_tenant_sees_nothing_whatever_the_previous_did(test_server, rls_copy, pooled_url) -> None:
    seed_tenant(pooled_url, "A")
    with db.connect(pooled_url, tenant="A", pooled=True) as previous:
        assert visible(previous, "models") == 1
        previous.commit()
        with pytest.raises(psycopg.errors.DivisionByZero):
            previous.execute("select 1 / 0")  # a failed transaction, rolled back on the server connection
        previous.rollback()
        visible(previous, "models")  # and an open one left behind when the client goes away
    with psycopg.connect(pooled_url, prepare_threshold=None) as plain:  # any client, library or not
        assert {table: visible(plain, table) for table in TENANT_DATA} == dict.fromkeys(TENANT_DATA, 0)
        plain.commit()
        plain.execute("set app.tenant_id = 'A'")  # the old advice: a session-level SET stays on the server side
        plain.commit()
    with db.connect(pooled_url, pooled=True) as library:  # a library client that sets no tenant
        assert {table: visible(library, table) for table in TENANT_DATA} == dict.fromkeys(TENANT_DATA, 0)
    with psycopg.connect(make_conninfo(test_server.url(rls_copy))) as owner:  # the rows are there
        assert visible(owner, "models") == 1
