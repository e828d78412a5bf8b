"""Issue 13: online DDL never queues in front of writers behind a long query, validates without a
blocking scan, and leaves nothing half-made when it fails (arc_halo.online_ddl, on a real server)."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from arc_halo import online_ddl


@pytest.fixture
def table(test_server, fresh_database: str) -> str:
    url = test_server.url(fresh_database)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table items (id bigint primary key, size integer not null)")
        conn.execute("insert into items select g, g % 100 from generate_series(1, 20000) as g")
    return url


def test_ddl_steps_aside_for_writers_while_a_long_query_holds_the_table(table: str) -> None:
    """Plain ALTER TABLE would queue behind the reader and every insert behind it; the step waits out of
    the queue instead, so the writer never waits more than about one lock_timeout."""
    reader = psycopg.connect(table)
    reader.execute("select count(*) from items")  # ACCESS SHARE until the transaction ends
    written: list[float] = []  # when each insert completed
    stop = threading.Event()

    def writer() -> None:
        with psycopg.connect(table, autocommit=True) as conn:
            key = 100_000
            while not stop.is_set():
                conn.execute("insert into items values (%s, 1)", (key,))
                written.append(time.monotonic())
                key += 1
                time.sleep(0.005)

    released: list[float] = []

    def release() -> None:
        released.append(time.monotonic())
        reader.rollback()

    thread = threading.Thread(target=writer)
    thread.start()
    timer = threading.Timer(1.5, release)  # the long query ends after 1.5 s
    timer.start()
    with psycopg.connect(table) as conn:
        started = time.monotonic()
        online_ddl.apply(conn, [{"kind": "lock", "sql": "alter table items add column note text"}])
        finished = time.monotonic()
        assert conn.execute("select count(*) from information_schema.columns where column_name = 'note'").fetchone()[0] == 1
    stop.set()
    thread.join()
    timer.join()
    reader.close()
    assert finished > released[0]  # the step waited for the reader...
    # ...and the writer kept going meanwhile: behind a queued plain ALTER it would have written nothing.
    assert sum(started < at < released[0] for at in written) > 20


def test_failed_validation_undoes_its_constraint_and_says_why(table: str) -> None:
    steps = [
        {"kind": "lock", "sql": "alter table items add constraint items_size_check check (size < 50) not valid"},
        {"kind": "validate", "sql": "alter table items validate constraint items_size_check",
         "undo": "alter table items drop constraint if exists items_size_check", "what": "add constraint items_size_check"},
    ]
    with psycopg.connect(table) as conn:
        with pytest.raises(online_ddl.OnlineDDLError, match=r"cannot add constraint items_size_check: .*Existing rows violate it"):
            online_ddl.apply(conn, steps)
        assert conn.execute("select count(*) from pg_constraint where conname = 'items_size_check'").fetchone()[0] == 0
        assert conn.autocommit is False  # handed back as it came


def test_concurrent_index_failure_leaves_no_invalid_index(table: str) -> None:
    step = {"kind": "concurrently", "index": "items_size_key", "what": "create index items_size_key",
            "sql": "create unique index concurrently if not exists items_size_key on items (size)"}
    with psycopg.connect(table) as conn:
        with pytest.raises(online_ddl.OnlineDDLError, match="cannot create index items_size_key: could not create unique index"):
            online_ddl.apply(conn, [step])
        assert conn.execute("select count(*) from pg_class where relname = 'items_size_key'").fetchone()[0] == 0
        conn.rollback()
        online_ddl.apply(conn, [{**step, "sql": step["sql"].replace("(size)", "(id, size)")}])
        valid = conn.execute("select indisvalid from pg_index where indexrelid = 'items_size_key'::regclass").fetchone()[0]
        assert valid is True
