"""Issue 10 §2: MetricLogger never loses a value it accepted, and never writes one twice.

Failures are real: a backend terminated mid-run, the server stopped and started again, and a
connection cut after the server received COMMIT but before the client heard back (a small proxy).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, tzinfo

from fractions import Fraction

import numpy as np
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from arc_halo import embedded, training
from arc_halo.errors import IntegrityError, InvalidInputError, NotFoundError
from rows import insert_model


class NoOffset(tzinfo):
    """A time zone object that knows no offset: the datetime is naive in all but name."""

    def utcoffset(self, dt):
        return None


@pytest.fixture
def committed(test_server, built_copy):
    """A private database with one model and one running session, committed; yields (url, session_id)."""
    url = test_server.url(built_copy)
    with psycopg.connect(url, autocommit=True) as conn:
        model_id = insert_model(conn, "logged")
        session_id = training.start_session(conn, model_id, "run")
    return url, session_id


def stored(url: str, session_id) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("select metric_name, step from training_metrics where training_session_id = %s"
                            " order by step, metric_name", (session_id,)).fetchall()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda logger: logger.log("loss", "0.5", step=500), "value must be a real number, got '0.5'"),
        (lambda logger: logger.log("loss", None, step=500), "value must be a real number, got None"),
        (lambda logger: logger.log("loss", 1.0, step=-1), "step must be between 0"),
        (lambda logger: logger.log("loss", 1.0, step=2.5), "step must be a whole number, got 2.5"),
        (lambda logger: logger.log("loss", 1.0, step=2**63), "step must be between 0"),
        (lambda logger: logger.log("loss", 1.0, step=500, epoch=-2), "epoch must be a whole number"),
        (lambda logger: logger.log("", 1.0, step=500), "metric name must be a string of 1 to 250"),
        (lambda logger: logger.log("x" * 251, 1.0, step=500), "got 251 characters"),
        (lambda logger: logger.log(7, 1.0, step=500), "metric name must be a string"),
        (lambda logger: logger.log("loss", 1.0, step=500, at=datetime(2026, 1, 1)), "with a time zone"),
        (lambda logger: logger.log_many({"loss": 1.0, "acc": [1]}, step=500), "metric 'acc': value must be a real"),
        # Issue 18 §1: what PostgreSQL cannot store is refused here, not at the flush.
        (lambda logger: logger.log("lo\x00ss", 1.0, step=500), "contains a NUL character"),
        (lambda logger: logger.log("loss\ud800", 1.0, step=500), r"'\\ud800' at 4 cannot be encoded in UTF-8"),
        (lambda logger: logger.log_many({"loss": 1.0, "acc\udcff": 1.0}, step=500), "cannot be encoded in UTF-8"),
        (lambda logger: logger.log("loss", 10**400, step=500), "fits double precision, got 1000000000.*OverflowError"),
        (lambda logger: logger.log("loss", Fraction(10**400, 3), step=500), "OverflowError"),
        (lambda logger: logger.log("loss", np.complex64(1 + 2j), step=500), "value must be a real number"),
        (lambda logger: logger.log("loss", np.array([1.0]), step=500), "value must be a real number"),
        (lambda logger: logger.log("loss", np.bool_(True), step=500), "value must be a real number"),
        (lambda logger: logger.log(["loss"], 1.0, step=500), "metric name must be a string"),
        (lambda logger: logger.log("loss", 1.0, step=500, at=datetime(2026, 1, 1, tzinfo=NoOffset())), "with a time zone"),
        (lambda logger: logger.log_many([("loss", 1.0)], step=500), "takes a dict of metric name -> value"),
    ],
    ids=["text", "none", "negative-step", "fractional-step", "huge-step", "negative-epoch", "empty-name",
         "long-name", "non-text-name", "naive-time", "list-value", "nul-name", "surrogate-name",
         "surrogate-name-many", "huge-int", "huge-fraction", "complex", "array", "numpy-bool", "unhashable-name",
         "no-offset-time", "pairs-not-dict"],
)
def test_one_bad_value_among_a_thousand_raises_there_and_the_rest_are_written(db, call, message) -> None:
    session_id = training.start_session(db, insert_model(db, "checked"), "run")
    with training.MetricLogger(db, session_id, buffer_rows=300) as logger:
        for step in range(1000):
            if step == 500:
                with pytest.raises(InvalidInputError, match=message):
                    call(logger)
            else:
                logger.log("loss", step / 10, step=step)
    steps = [row[0] for row in db.execute("select step from training_metrics where training_session_id = %s"
                                          " and metric_name = 'loss' order by step", (session_id,))]
    assert steps == [step for step in range(1000) if step != 500]  # log_many refuses its step whole


def test_numpy_numbers_are_values(db) -> None:
    session_id = training.start_session(db, insert_model(db, "numpy"), "run")
    with training.MetricLogger(db, session_id) as logger:
        logger.log_many({"loss": np.float32(0.25), "tokens": np.int64(7), "norm": np.array(1.5)}, step=np.int64(3))
    assert sorted(db.execute("select metric_name, step, value from training_metrics where training_session_id = %s",
                             (session_id,)).fetchall()) == [("loss", 3, 0.25), ("norm", 3, 1.5), ("tokens", 3, 7.0)]


def test_a_failed_flush_keeps_its_rows_and_the_next_flush_writes_them(committed) -> None:
    url, session_id = committed
    with psycopg.connect(url, autocommit=True) as conn:
        logger = training.MetricLogger(conn, session_id, buffer_rows=10_000)
        for step in range(100):
            logger.log("loss", 1.0, step=step)
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("select pg_terminate_backend(%s)", (conn.info.backend_pid,))
        with pytest.raises(psycopg.OperationalError):
            logger.flush()
        assert logger.pending == 100
        logger.log("loss", 1.0, step=100)
        assert logger.flush() == 101  # reconnected by itself
        assert logger.pending == 0 and logger.flush() == 0
        logger.conn.close()
    assert [step for _, step in stored(url, session_id)] == list(range(101))


class CommitSwallowingProxy:
    """A TCP proxy to the server that, once armed, forwards the client's COMMIT and then cuts both
    connections before the server's answer reaches the client: the commit happened, the client cannot
    know (the ambiguous failure)."""

    def __init__(self, url: str) -> None:
        info = conninfo_to_dict(url)
        host, port = info.get("host") or "/tmp", int(info.get("port") or 5432)
        self.upstream = (socket.AF_UNIX, f"{host}/.s.PGSQL.{port}") if host.startswith("/") else \
            (socket.AF_INET, (host, port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = make_conninfo(url, host="127.0.0.1", port=str(self.listener.getsockname()[1]), sslmode="disable")
        self.armed = threading.Event()
        self.cut = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.socket(self.upstream[0])
            server.connect(self.upstream[1])
            threading.Thread(target=self._forward, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._forward, args=(server, client, False), daemon=True).start()

    def _forward(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_client and self.armed.is_set() and b"COMMIT" in data:
                    self.cut.set()  # before forwarding: the answer must not slip through
                    sink.sendall(data)
                    time.sleep(0.5)  # the server commits; its answer is never relayed
                    for end in (source, sink):
                        end.shutdown(socket.SHUT_RDWR)
                    return
                if self.cut.is_set() and not from_client:
                    return
                sink.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()


def test_a_retry_after_a_lost_commit_answer_writes_nothing_twice(committed) -> None:
    url, session_id = committed
    proxy = CommitSwallowingProxy(url)
    try:
        conn = psycopg.connect(proxy.url, autocommit=True)
        logger = training.MetricLogger(conn, session_id, buffer_rows=10_000, reconnect=lambda: psycopg.connect(url))
        for step in range(500):
            logger.log_many({"loss": 1.0, "lr": 0.1}, step=step)
        proxy.armed.set()
        with pytest.raises(psycopg.OperationalError):
            logger.flush()
        assert proxy.cut.is_set()
        assert len(stored(url, session_id)) == 1000, "the server committed the batch before the cut"
        assert logger.pending == 1000  # the logger cannot know: it keeps the rows
        assert logger.flush() == 0  # the retry finds its batch id and writes nothing
        logger.log("loss", 2.0, step=500)
        assert logger.flush() == 1
        logger.conn.close()
    finally:
        proxy.close()
    rows = stored(url, session_id)
    assert len(rows) == 1001 and len(set(rows)) == 1001
    with psycopg.connect(url) as check:
        assert check.execute("select count(*), sum(row_count) from metric_batches where training_session_id = %s",
                             (session_id,)).fetchone() == (2, 1001)


@pytest.mark.skipif(bool(os.environ.get("ARC_HALO_TEST_DATABASE_URL")), reason="restarts the embedded server")
def test_stopping_and_starting_the_server_mid_run_loses_and_duplicates_nothing(committed) -> None:
    url, session_id = committed
    failures = 0
    with psycopg.connect(url, autocommit=True) as conn:
        logger = training.MetricLogger(conn, session_id, buffer_rows=40)
        for step in range(400):
            if step == 100:
                embedded.stop()
            if step == 200:
                embedded.ensure_running()
            try:
                logger.log_many({"loss": float(step), "lr": 0.1, "grad_norm": 1.0}, step=step)
            except psycopg.OperationalError:
                failures += 1  # the values are accepted; the flush is retried later
        logger.flush()
        logger.conn.close()
    assert failures > 0
    rows = stored(url, session_id)
    assert len(rows) == 1200 and len(set(rows)) == 1200


def test_an_exception_in_the_with_block_still_stores_what_came_before(db) -> None:
    session_id = training.start_session(db, insert_model(db, "interrupted"), "run")
    with pytest.raises(ZeroDivisionError):
        with training.MetricLogger(db, session_id) as logger:
            for step in range(10):
                logger.log("loss", 1.0 / (9 - step) if step < 9 else 1 / 0, step=step)
    assert db.execute("select count(*) from training_metrics where training_session_id = %s",
                      (session_id,)).fetchone()[0] == 9


def test_a_failing_flush_on_exception_exit_says_so_in_one_line(committed, caplog) -> None:
    url, session_id = committed

    def refuse() -> psycopg.Connection:
        raise psycopg.OperationalError("server is down")

    conn = psycopg.connect(url, autocommit=True)
    with caplog.at_level(logging.ERROR, logger="arc_halo.training"), pytest.raises(KeyError):
        with training.MetricLogger(conn, session_id, reconnect=refuse) as logger:
            logger.log("loss", 1.0, step=1)
            conn.close()
            raise KeyError("the training loop's own error")
    assert [record.getMessage() for record in caplog.records] == [
        f"MetricLogger: 1 metric values of session {session_id} not written while leaving on KeyError: server is down"]


def test_unknown_ids_raise_not_found(db) -> None:
    unknown = uuid.uuid4()
    for call in (lambda: training.update_progress(db, unknown, 5), lambda: training.finish_session(db, unknown),
                 lambda: training.resume(db, unknown), lambda: training.MetricLogger(db, unknown)):
        with pytest.raises(NotFoundError, match=f"no training session {unknown}"):
            call()
    for call in (lambda: training.load_checkpoint(db, unknown), lambda: training.mark_best(db, unknown)):
        with pytest.raises(NotFoundError, match=f"no checkpoint {unknown}"):
            call()
    with pytest.raises(InvalidInputError, match="session id 'run-1' is not a UUID"):
        training.finish_session(db, "run-1")


def test_odd_names_are_refused_at_log_and_the_run_keeps_going(committed) -> None:
    """Issue 18 §1: a NUL or a lone surrogate in a name used to be accepted and then fail every later
    flush. Now each is refused at `log`, over several flushes, and every other value is stored once."""
    url, session_id = committed
    odd = ["grad\x00norm", "acc\ud83d", "\udc80", "x" * 251, "lr\x00"]
    expected = {}
    with psycopg.connect(url, autocommit=True) as conn:
        with training.MetricLogger(conn, session_id, buffer_rows=64) as logger:
            for step in range(500):
                if step % 50 == 7:
                    with pytest.raises(InvalidInputError):
                        logger.log(odd[step // 50 % len(odd)], 1.0, step=step)
                    with pytest.raises(InvalidInputError):
                        logger.log_many({"loss": 1.0, odd[step // 50 % len(odd)]: 2.0}, step=step)
                logger.log("loss", step / 7, step=step)
                logger.log("naïve ✓ 損失 🙂", -step / 3, step=step)
                expected[("loss", step)] = step / 7
                expected[("naïve ✓ 損失 🙂", step)] = -step / 3
    with psycopg.connect(url) as conn:
        rows = conn.execute("select metric_name, step, value from training_metrics where training_session_id = %s",
                            (session_id,)).fetchall()
    assert len(rows) == len(expected) == 1000
    assert {(name, step): value for name, step, value in rows} == expected


def test_a_batch_the_database_refuses_is_split_until_the_refused_values_stand_alone(committed, caplog) -> None:
    """Defence in depth: a constraint the logger's checks do not know refuses three values; the batches
    holding them are split, every other value is written exactly once, the three are kept in `rejected`,
    each is logged in one line, later flushes are not blocked, and close says so."""
    url, session_id = committed
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("alter table training_metrics add constraint test_no_poison_check check (value <> 13.5)")
    poisoned = {41, 333, 334}
    with psycopg.connect(url, autocommit=True) as conn, caplog.at_level(logging.ERROR, logger="arc_halo.training"):
        logger = training.MetricLogger(conn, session_id, buffer_rows=200)
        for step in range(1000):
            logger.log("loss", 13.5 if step in poisoned else float(step), step=step)
        assert logger.flush() >= 0 and logger.pending == 0
        logger.log("loss", 1.0, step=1000)
        assert logger.flush() == 1  # not blocked
        with pytest.raises(IntegrityError, match=r"refused 3 metric value\(s\).*'loss' at step 41.*test_no_poison_check"):
            logger.close()
        logger.close()  # reported once
    assert [(value.step, value.value) for value in logger.rejected] == [(41, 13.5), (333, 13.5), (334, 13.5)]
    assert len(caplog.records) == 3 and all("test_no_poison_check" in r.getMessage() for r in caplog.records)
    with psycopg.connect(url) as conn:
        steps = [row[0] for row in conn.execute(
            "select step from training_metrics where training_session_id = %s order by step", (session_id,))]
        assert steps == [step for step in range(1001) if step not in poisoned]
        assert conn.execute("select sum(row_count) from metric_batches where training_session_id = %s",
                            (session_id,)).fetchone()[0] == 998
