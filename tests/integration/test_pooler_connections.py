"""Issue 18 §3: connections behind a real PgBouncer in transaction mode (tests/integration/pgbouncer.py).

- An autocommit connection through the pooler would run each statement with whatever tenant another
  client left on the shared server connection (nothing sends a BEGIN to set it): it is refused, at
  connect and when autocommit is switched on later.
- A parallel upload needs workers + 2 server connections at once; with fewer in the pool it used to wait
  for itself until PgBouncer gave up (120 s, then a protocol error). It now uses the workers it can have,
  or stops at once saying what to change.
"""

from __future__ import annotations

import logging

import numpy as np
import psycopg
import pytest

from arc_halo import db, parallel_upload, tensors
from arc_halo.errors import ConfigurationError, InvalidInputError
from conftest import owner_login, running_pgbouncer
from rows import insert_model
from test_tenancy import visible


@pytest.fixture
def pooled_url(pgbouncer, rls_copy, app_login) -> str:
    return pgbouncer.url(rls_copy, app_login)


def test_autocommit_through_a_pooler_is_refused(test_server, rls_copy, pooled_url) -> None:
    with psycopg.connect(test_server.url(rls_copy)) as owner:  # a row of tenant A
        owner.execute("select set_config('app.tenant_id', 'A', true)")
        insert_model(owner, "model-A")
    with psycopg.connect(pooled_url, prepare_threshold=None, autocommit=True) as other:
        other.execute("set app.tenant_id = 'A'")  # left on the pool's one server connection
        # why: a plain autocommit client now meets tenant A's rows
        assert other.execute("select count(*) from models").fetchone()[0] == 1
    with pytest.raises(InvalidInputError, match="through a transaction-mode pooler cannot be autocommit"):
        db.connect(pooled_url, pooled=True, autocommit=True)
    with db.connect(pooled_url, pooled=True) as conn:
        with pytest.raises(InvalidInputError, match="cannot be autocommit"):
            conn.autocommit = True
        assert conn.autocommit is False
        assert visible(conn, "models") == 0  # each transaction sets the empty tenant: nothing of A's
        conn.commit()
    with db.pool(pooled_url, min_size=1, max_size=1, pooled=True) as pool:  # the pool's reset still works
        for _ in range(2):
            with pool.connection() as conn:
                assert visible(conn, "models") == 0


def arrays(count: int) -> dict[str, np.ndarray]:
    return {f"t{i}": np.arange(5000, dtype=np.float32) + i for i in range(count)}


def upload(url: str, workers: int, wait: float) -> dict[str, str]:
    with db.connect(url, pooled=True) as conn:
        with parallel_upload.ParallelUpload(conn, workers=workers, chunk_bytes=4096, pool_wait_seconds=wait) as up:
            ids = {name: up.put(array, name) for name, array in arrays(3).items()}
    return ids


def test_a_parallel_upload_fits_a_small_pool_or_stops_at_once(test_server, built_copy, caplog) -> None:
    owner = owner_login(test_server)
    for pool_size, outcome in ((1, "stops"), (3, "one worker")):
        with running_pgbouncer(test_server, [owner], pool_size=pool_size) as bouncer:
            url = bouncer.url(built_copy, owner)
            if outcome == "stops":
                with pytest.raises(ConfigurationError, match=r"lent this parallel upload 1 server connection\(s\) "
                                                             r"at once .* it needs at least 3"):
                    upload(url, workers=2, wait=1)
                with psycopg.connect(test_server.url(built_copy)) as check:  # nothing was written
                    assert check.execute("select count(*) from tensor_metadata").fetchone()[0] == 0
                continue
            with caplog.at_level(logging.WARNING, logger="arc_halo.parallel_upload"):
                ids = upload(url, workers=2, wait=1)
            assert "using 1 worker(s) instead of 2" in caplog.text
            with db.connect(url, pooled=True) as conn:
                for name, array in arrays(3).items():
                    assert np.array_equal(tensors.get(conn, ids[name]), array)
