"""Issue 14 §2: tensor chunks written over several connections, invisible until the caller's one
transaction makes them visible; a killed upload leaves nothing visible, and its leftovers are removed by
the next upload or `arc-halo storage uploads --delete`, never those of an upload in flight. Run as the
owner, as the application's login with row-level security on, through a transaction-mode PgBouncer,
and with the server restarted mid-write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import numpy as np
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from arc_halo import db, embedded, lookups, tensors
from arc_halo.errors import NotFoundError
from arc_halo.parallel_upload import ParallelUpload, find_abandoned, remove_abandoned
from cli_runner import arc_halo
from conftest import running_pgbouncer


def arrays(seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "big": rng.standard_normal((300, 1000), dtype=np.float32),  # 1.2 MB: many chunks over both workers
        "ints": rng.integers(-9, 9, size=(7, 13, 5), dtype=np.int64),
        "halves": rng.standard_normal(4097).astype(np.float16),
        "scalar": np.array(2.5, dtype=np.float64),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "again": None,  # the same bytes as "big": stored once
    }


def upload(conn: psycopg.Connection, items: dict[str, np.ndarray], **options) -> dict[str, object]:
    with ParallelUpload(conn, **options) as up:
        return {name: up.put(items["big"] if array is None else array, name) for name, array in items.items()}


def counts(url: str) -> tuple[int, int, int]:
    """(visible tensors, pending tensor rows, chunk rows), seen by the owner."""
    with psycopg.connect(url) as conn:
        return conn.execute("""select count(*) filter (where pending_upload_id is null),
                                      count(*) filter (where pending_upload_id is not null),
                                      (select count(*) from tensor_data)
                               from tensor_metadata""").fetchone()


def test_round_trip_and_nothing_visible_before_the_block_ends(test_server, built_copy) -> None:
    url, items = test_server.url(built_copy), arrays()
    with psycopg.connect(url) as conn, psycopg.connect(url, autocommit=True) as reader:
        with conn.transaction():  # the caller's: the tensors are visible when it commits
            with ParallelUpload(conn, workers=2, chunk_bytes=4096) as up:
                ids = {name: up.put(items["big"] if array is None else array, name) for name, array in items.items()}
                seen_in_block = conn.execute(f"select count(*) from tensor_metadata where {lookups.VISIBLE}").fetchone()[0]
            assert seen_in_block == 0
            # The block is done (chunks written and checked), the transaction not: other sessions see no tensor.
            for tensor_id in ids.values():
                with pytest.raises(NotFoundError):
                    tensors.get(reader, tensor_id)
            assert tensors.find_stored(reader, tensors.TensorBytes.of(items["big"])) is None
        assert ids["again"] == ids["big"]
        for name, array in items.items():
            stored = tensors.get(reader, ids[name])
            expected = items["big"] if array is None else array
            assert stored.dtype == expected.dtype and stored.shape == expected.shape
            assert np.array_equal(stored, expected)
    assert counts(url)[:2] == (5, 0)


def test_bytes_already_stored_are_not_written_again(test_server, built_copy) -> None:
    url, items = test_server.url(built_copy), arrays()
    with psycopg.connect(url) as conn:
        first = upload(conn, items)
        conn.commit()
        before = counts(url)
        again = upload(conn, {"copy of big": items["big"], "copy of ints": items["ints"]})
        conn.commit()
    assert again == {"copy of big": first["big"], "copy of ints": first["ints"]}
    assert counts(url) == before


def test_an_error_in_the_block_leaves_nothing_at_all(test_server, built_copy) -> None:
    url = test_server.url(built_copy)
    with psycopg.connect(url) as conn, pytest.raises(KeyError):
        with ParallelUpload(conn, workers=2) as up:
            up.put(arrays()["big"], "doomed")
            raise KeyError("the caller's own error")
    assert counts(url) == (0, 0, 0)


KILLED = """
import sys, time, numpy as np, psycopg
from arc_halo.parallel_upload import ParallelUpload
conn = psycopg.connect(sys.argv[1])
with conn.transaction():  # the upload's block ends (chunks written, checked), its transaction does not
    with ParallelUpload(conn, workers=2, chunk_bytes=4096) as up:
        up.put(np.random.default_rng(1).standard_normal((500, 500)), "killed-upload")
    print("finished", flush=True)
    time.sleep(600)
"""


def kill_after_upload(url: str) -> None:
    uploader = subprocess.Popen([sys.executable, "-c", KILLED, url], stdout=subprocess.PIPE, text=True)
    try:
        assert uploader.stdout.readline().strip() == "finished"
        os.kill(uploader.pid, signal.SIGKILL)
        uploader.wait()
    finally:
        uploader.kill()


def test_killed_upload_is_invisible_and_the_next_upload_removes_it(test_server, built_copy) -> None:
    url = test_server.url(built_copy)
    kill_after_upload(url)
    visible, pending, chunks = counts(url)
    assert (visible, pending) == (0, 1) and chunks == 500 * 500 * 8 // 4096 + 1  # leftovers, invisible
    with psycopg.connect(url) as conn:
        with pytest.raises(NotFoundError):
            tensors.get(conn, conn.execute("select tensor_id from tensor_metadata").fetchone()[0])
        conn.rollback()
        new = upload(conn, {"next": np.arange(10.0)})
        conn.commit()
        assert np.array_equal(tensors.get(conn, new["next"]), np.arange(10.0))
    assert counts(url) == (1, 0, 1)


def test_cleanup_command_removes_dead_uploads_only_when_asked_and_never_live_ones(test_server, built_copy) -> None:
    url = test_server.url(built_copy)
    with psycopg.connect(url) as live_conn:
        live = ParallelUpload(live_conn, workers=1).__enter__()  # in flight while the command runs
        live.put(np.ones(5000), "in flight")
        kill_after_upload(url)
        listed = arc_halo("storage", "uploads", url=url)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.strip() == ("1 pending tensor(s) of 1 parallel upload(s) that ended without finishing;"
                                         " --delete removes them (dry run)")
        assert counts(url)[1] == 2
        deleted = arc_halo("storage", "uploads", "--delete", url=url)
        assert deleted.stdout.strip() == "deleted 1 pending tensor(s) of parallel uploads that ended without finishing"
        live.__exit__(None, None, None)
        live_conn.commit()
    assert counts(url) == (1, 0, 5000 * 8 // tensors.DEFAULT_CHUNK_BYTES + 1)


def test_as_the_app_with_rls_each_tenant_uploads_and_cleans_only_its_own(test_server, rls_copy, app_login) -> None:
    url = make_conninfo(test_server.url(rls_copy), user=app_login)
    with db.connect(url, tenant="A") as a:
        kill_after_upload(make_conninfo(url, options="-c app.tenant_id=A"))
        ids = upload(a, arrays())
        a.commit()
    with db.connect(url, tenant="B") as b:
        kill_after_upload(make_conninfo(url, options="-c app.tenant_id=B"))
        assert find_abandoned(b) == (1, 1)  # B's own dead upload only
        b_ids = upload(b, {"mine": np.arange(6, dtype=np.int32)})
        b.commit()
        with pytest.raises(NotFoundError):
            tensors.get(b, ids["big"])
        assert np.array_equal(tensors.get(b, b_ids["mine"]), np.arange(6, dtype=np.int32))
    with db.connect(url, tenant="A") as a:
        assert np.array_equal(tensors.get(a, ids["ints"]), arrays()["ints"])
        assert a.execute("select count(*) from tensor_metadata").fetchone()[0] == 5
    with psycopg.connect(test_server.url(rls_copy)) as owner:
        rows = owner.execute("""select tenant_id, count(*), count(pending_upload_id) from tensor_metadata
                                group by tenant_id order by 1""").fetchall()
    assert rows == [("A", 5, 0), ("B", 1, 0)]


@pytest.fixture(scope="module")
def wide_pgbouncer(test_server, app_login):
    """Transaction-mode PgBouncer with room for an upload: the caller, its control connection and two workers."""
    with running_pgbouncer(test_server, [app_login], pool_size=4) as bouncer:
        yield bouncer


def test_through_a_transaction_mode_pooler_as_the_app(wide_pgbouncer, rls_copy, app_login) -> None:
    url = wide_pgbouncer.url(rls_copy, app_login)
    items = arrays()
    for round_ in range(3):  # server connections change hands between rounds
        with db.connect(url, tenant=f"T{round_}", pooled=True) as conn:
            ids = upload(conn, items)
            conn.commit()
            assert all(np.array_equal(tensors.get(conn, ids[name]), items["big"] if array is None else array)
                       for name, array in items.items())
            conn.commit()


@pytest.mark.skipif(bool(os.environ.get("ARC_HALO_TEST_DATABASE_URL")), reason="restarts the embedded server")
def test_server_restarted_mid_write_leaves_nothing_visible(test_server, built_copy) -> None:
    url = test_server.url(built_copy)
    big = np.random.default_rng(5).standard_normal((4000, 4000)).astype(np.float32)  # 64 MB
    failure: list[BaseException] = []

    def write() -> None:
        try:
            with psycopg.connect(url) as conn:
                upload(conn, {f"part {i}": big + i for i in range(4)}, workers=2)
                conn.commit()
        except BaseException as exc:
            failure.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    while counts(url)[1] == 0 and writer.is_alive():  # stop it once the first pending row is in
        pass
    embedded.stop()
    writer.join()
    embedded.ensure_running()
    assert failure and isinstance(failure[0], psycopg.OperationalError)
    visible, pending, _ = counts(url)
    assert visible == 0 and pending >= 1
    with psycopg.connect(url) as conn:
        assert remove_abandoned(conn) == pending
    assert counts(url) == (0, 0, 0)
