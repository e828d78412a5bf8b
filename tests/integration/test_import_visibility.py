"""A model import becomes visible all at once: a concurrent reader sees nothing of it or all of it, and an
import killed mid-write leaves nothing behind (the README: "everything becomes visible at once when the
import's transaction commits")."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import psycopg

from cli_runner import start_arc_halo
from test_model_import import minilm_directory

# What an import writes, counted in one snapshot as readers see it: tensor rows an upload has not yet
# published (pending_upload_id set, chunks written over other connections) are not part of any model.
VISIBLE_COUNTS = {
    "models": "select count(*) from models",
    "transformer_layers": "select count(*) from transformer_layers",
    "attention_heads": "select count(*) from attention_heads",
    "model_weights": "select count(*) from model_weights",
    "tensor_metadata": "select count(*) from tensor_metadata where pending_upload_id is null",
    "tensor_data": "select count(*) from tensor_data join tensor_metadata using (tensor_id)"
                   " where pending_upload_id is null",
    "embeddings": "select count(*) from embeddings",
}
SNAPSHOT = "select " + ", ".join(f"({query})" for query in VISIBLE_COUNTS.values())
PENDING = "select count(*) from tensor_metadata where pending_upload_id is not null"


def start_import(url: str, name: str) -> subprocess.Popen:
    return start_arc_halo("model", "import", str(minilm_directory()), "--name", name, url=url)


def import_is_writing(conn: psycopg.Connection) -> bool:
    """The import's connections are writing tensor chunks (its COPY or INSERTs into tensor_data)."""
    return conn.execute(
        """select exists (select from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()
                          and state = 'active' and query ilike '%tensor_data%')""").fetchone()[0]


def test_a_concurrent_reader_sees_none_or_all_of_an_import(test_server, built_copy) -> None:
    url = test_server.url(built_copy)
    with psycopg.connect(url, autocommit=True) as conn:
        before = conn.execute(SNAPSHOT).fetchone()
    seen: set[tuple] = set()
    done = threading.Event()

    def read() -> None:
        with psycopg.connect(url, autocommit=True) as reader:
            while not done.is_set():
                seen.add(reader.execute(SNAPSHOT).fetchone())
                time.sleep(0.01)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        process = start_import(url, "visible-at-once")
        _, stderr = process.communicate(timeout=900)
        assert process.returncode == 0, stderr
        time.sleep(0.1)  # the reader's next snapshot sees the commit
    finally:
        done.set()
        reader.join()
    with psycopg.connect(url, autocommit=True) as conn:
        after = conn.execute(SNAPSHOT).fetchone()
    assert after != before and all(a > b for a, b in zip(after, before)), (before, after)
    assert seen <= {before, after}, sorted(seen - {before, after})[:3]  # no half-written state was ever visible
    assert before in seen and after in seen


def test_an_import_killed_mid_write_leaves_nothing(test_server, built_copy) -> None:
    url = test_server.url(built_copy)
    with psycopg.connect(url, autocommit=True) as conn:
        before = conn.execute(SNAPSHOT).fetchone()
        process = start_import(url, "killed-mid-write")
        deadline = time.monotonic() + 600
        while not import_is_writing(conn):
            assert process.poll() is None, "the import ended before it wrote a chunk: " + process.stderr.read()
            assert time.monotonic() < deadline, "the import never started writing"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        # the server notices the dropped connections and rolls their transactions back
        deadline = time.monotonic() + 60
        while conn.execute("select count(*) from pg_stat_activity where datname = current_database()"
                           " and pid <> pg_backend_pid()").fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert conn.execute(SNAPSHOT).fetchone() == before
        # a new import of the same model then succeeds from scratch, and removes what the dead one left
        retry = start_import(url, "killed-mid-write")
        _, stderr = retry.communicate(timeout=900)
        assert retry.returncode == 0, stderr
        assert conn.execute("select count(*) from models where model_name = 'killed-mid-write'").fetchone()[0] == 1
        assert conn.execute(PENDING).fetchone()[0] == 0
