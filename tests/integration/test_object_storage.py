"""External tensors on object storage (issue 15) against a real S3-compatible server (SeaweedFS, one per
session, see conftest.s3_server): model import/export through the CLI, verified reads, a killed upload,
the orphan command on s3:// and file://, and gs:// / az:// configuration from the environment."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from urllib.parse import unquote

import numpy as np
import obstore
import psycopg
import pytest

from arc_halo import local_s3, objectstore, tensors
from arc_halo.errors import ArcHaloError
from cli_runner import arc_halo
from test_model_import import assert_same_tensors, llama_tensors, write_sharded


def object_keys(prefix: str) -> dict[str, int]:
    return {item.uri: item.size for item in objectstore.list_objects(prefix)}


def rewrite_object(uri: str, change) -> None:
    """Replace an object's bytes with change(bytes), as a fault on the storage side would."""
    location = objectstore.Location.parse(uri)
    store = objectstore._store_for(location.scheme, location.bucket)
    data = bytes(obstore.get(store, location.key).bytes())
    obstore.put(store, location.key, change(data))


def test_s3_model_import_exports_bit_identical_with_no_tensor_bytes_in_database(
        test_server, built_copy, s3_prefix, tmp_path) -> None:
    url = test_server.url(built_copy)
    shards = write_sharded(tmp_path / "tiny-llama", llama_tensors())
    result = arc_halo("model", "import", str(tmp_path / "tiny-llama"), "--external", s3_prefix, url=url)
    assert result.returncode == 0, result.stderr
    exported = tmp_path / "out.safetensors"
    result = arc_halo("model", "export", "tiny-llama", str(exported), url=url)
    assert result.returncode == 0, result.stderr
    assert_same_tensors(shards, exported)

    stored = object_keys(s3_prefix)
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from tensor_data").fetchone()[0] == 0
        rows = conn.execute("select storage_kind, external_uri, byte_size from tensor_metadata").fetchall()
        # Content-addressed: identical tensors (the layers' equal inv_freq buffers) are one object.
        distinct = {(a.dtype.str, a.shape, a.tobytes()) for a in llama_tensors().values()}
        assert len(rows) == len(distinct) < len(llama_tensors()) and {row[0] for row in rows} == {"external"}
        assert {uri: size for _, uri, size in rows} == stored  # every object is a tensor's, sizes recorded
        everything = conn.execute("select string_agg(t::text, ' ') from tensor_metadata t").fetchone()[0]
    assert local_s3.SECRET_KEY not in everything and local_s3.ACCESS_KEY not in everything


def test_multipart_tensor_reads_are_verified_and_name_tensor_and_uri(db, s3_prefix) -> None:
    array = np.random.default_rng(5).standard_normal(5_000_000).astype(np.float32)  # 20 MB: three parts
    tensor_id = tensors.put(db, array, "big.weight", store=objectstore.open_store(s3_prefix))
    meta = tensors.info(db, tensor_id)
    assert meta.external_uri.startswith(s3_prefix + "/") and meta.byte_size == array.nbytes
    assert tensors.get(db, tensor_id).tobytes() == array.tobytes()

    def flip(data: bytes) -> bytes:
        damaged = bytearray(data)
        damaged[12_345_678] ^= 0x01
        return bytes(damaged)

    rewrite_object(meta.external_uri, flip)
    named = rf"tensor {tensor_id} \(big.weight\): {meta.external_uri}"
    with pytest.raises(tensors.TensorIntegrityError, match=named + " content checksum mismatch"):
        tensors.get(db, tensor_id)
    rewrite_object(meta.external_uri, lambda data: data + b"!")
    with pytest.raises(tensors.TensorIntegrityError, match=named + f" holds {array.nbytes + 1} bytes, {array.nbytes} expected"):
        tensors.get(db, tensor_id)
    objectstore.delete_objects([meta.external_uri])
    with pytest.raises(tensors.TensorIntegrityError, match=named + " is missing"):
        tensors.get(db, tensor_id)


UPLOADER = """
import sys, time, numpy as np, psycopg
from arc_halo import objectstore, tensors
conn = psycopg.connect(sys.argv[1])
with conn.transaction():  # the object is complete, the metadata not yet committed: then the process dies
    tensors.put(conn, np.ones(12_000_000, dtype=np.float32), "killed.upload", store=objectstore.open_store(sys.argv[2]))
    print("uploaded", flush=True)
    time.sleep(600)
"""


def test_killed_upload_leaves_no_tensor_and_orphans_removes_the_object_only_when_asked(
        test_server, built_copy, s3_prefix) -> None:
    url = test_server.url(built_copy)
    with psycopg.connect(url) as conn:  # a committed tensor under the same prefix is never an orphan
        kept = tensors.info(conn, tensors.put(conn, np.arange(10.0), "kept", store=objectstore.open_store(s3_prefix)))
        conn.commit()
    uploader = subprocess.Popen([sys.executable, "-c", UPLOADER, url, s3_prefix], stdout=subprocess.PIPE, text=True)
    try:
        assert uploader.stdout.readline().strip() == "uploaded"
    finally:
        os.kill(uploader.pid, signal.SIGKILL)
        uploader.wait()
    with psycopg.connect(url) as conn:
        assert conn.execute("select tensor_name from tensor_metadata").fetchall() == [("kept",)]
    objects = object_keys(s3_prefix)
    [orphan] = set(objects) - {kept.external_uri}
    assert objects[orphan] == 48_000_000

    young = arc_halo("storage", "orphans", s3_prefix, url=url)  # default age threshold: a fresh object is in flight
    assert young.returncode == 0, young.stderr
    assert "0 orphaned object(s)" in young.stdout and orphan not in young.stdout
    listed = arc_halo("storage", "orphans", s3_prefix, "--older-than", "0s", url=url)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split("\t")[:2] == [orphan, "48000000"]
    assert "1 orphaned object(s), 48,000,000 bytes" in listed.stdout and "(dry run)" in listed.stdout
    assert set(object_keys(s3_prefix)) == {kept.external_uri, orphan}  # a dry run removes nothing
    deleted = arc_halo("storage", "orphans", s3_prefix, "--older-than", "0s", "--delete", url=url)
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted 1 orphaned object(s)" in deleted.stdout
    assert set(object_keys(s3_prefix)) == {kept.external_uri}
    with psycopg.connect(url) as conn:
        assert tensors.get(conn, kept.tensor_id).tolist() == list(np.arange(10.0))
    missing = arc_halo("storage", "orphans", "s3://no-such-bucket/models", url=url)
    assert missing.returncode == 2 and "no bucket 'no-such-bucket'" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_external_dir_import_and_orphans_on_a_file_store(test_server, built_copy, tmp_path) -> None:
    url = test_server.url(built_copy)
    shards = write_sharded(tmp_path / "tiny-llama", llama_tensors())
    blobs = tmp_path / "blobs"
    result = arc_halo("model", "import", str(tmp_path / "tiny-llama"), "--external-dir", str(blobs), url=url)
    assert result.returncode == 0, result.stderr
    stray = blobs / "ab" / ".partial-left-by-a-killed-writer"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"partial")
    listed = arc_halo("storage", "orphans", blobs.as_uri(), "--older-than", "0s", url=url)
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()[:-1]] == [stray.as_uri()]
    with psycopg.connect(url) as conn:
        assert objectstore.find_orphans(conn, blobs.as_uri(), timedelta(hours=1)) == []  # too young to judge
        with pytest.raises(ArcHaloError, match="no directory .*nothing-here"):
            objectstore.find_orphans(conn, (tmp_path / "nothing-here").as_uri(), timedelta(0))
    deleted = arc_halo("storage", "orphans", blobs.as_uri(), "--older-than", "0s", "--delete", url=url)
    assert deleted.returncode == 0 and "deleted 1 orphaned object(s), 7 bytes" in deleted.stdout
    assert not stray.exists()
    exported = tmp_path / "out.safetensors"
    assert arc_halo("model", "export", "tiny-llama", str(exported), url=url).returncode == 0
    assert_same_tensors(shards, exported)  # every object a tensor points to is still there


def test_orphans_refuse_when_row_level_security_hides_tenants(test_server, built_copy, tmp_path) -> None:
    with psycopg.connect(test_server.url(built_copy)) as conn:
        conn.execute("alter table tensor_metadata enable row level security")
        conn.execute("set role arc_halo_app")
        with pytest.raises(ArcHaloError, match="needs every tenant's tensor_metadata rows"):
            objectstore.find_orphans(conn, tmp_path.as_uri(), timedelta(0))
        conn.rollback()


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    """Answers every request 404 (GET) or 403 (anything else) and records it: enough to see where a
    client configured from the environment sends its requests and how it signs them."""

    seen: list[tuple[str, str, str]] = []

    def _answer(self, status: int) -> None:
        self.seen.append((self.command, self.path, self.headers.get("Authorization") or ""))
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(404)

    def do_PUT(self) -> None:  # noqa: N802
        self._answer(403)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def recording_endpoint():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    RecordingHandler.seen = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", RecordingHandler.seen
    finally:
        server.shutdown()


def test_gcs_and_azure_stores_take_their_configuration_from_the_environment(recording_endpoint, monkeypatch) -> None:
    endpoint, seen = recording_endpoint
    target = memoryview(bytearray(4))
    monkeypatch.setenv("GOOGLE_BASE_URL", endpoint)
    monkeypatch.setenv("GOOGLE_SKIP_SIGNATURE", "true")
    with pytest.raises(FileNotFoundError):
        objectstore.read_into("gs://weights/run1/ab/x.tensor", target)
    assert (seen[-1][0], unquote(seen[-1][1])) == ("GET", "/weights/run1/ab/x.tensor")

    for name in ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_USE_EMULATOR"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ArcHaloError, match="cannot configure az://models: .*set AZURE_STORAGE_ACCOUNT_NAME"):
        objectstore.open_store("az://models/run1")
    monkeypatch.setenv("AZURE_STORAGE_USE_EMULATOR", "true")
    monkeypatch.setenv("AZURITE_BLOB_STORAGE_URL", endpoint)
    store = objectstore.open_store("az://models/run1")
    with pytest.raises(ArcHaloError, match=r"upload to az://models/run1/\w\w/\w+\.tensor was refused .*AZURE_STORAGE_ACCOUNT_NAME"):
        store.write(memoryview(b"abcd"))
    method, path, authorization = seen[-1]
    assert method == "PUT" and path.startswith("/devstoreaccount1/models/run1/")
    assert authorization.startswith("SharedKey devstoreaccount1:")  # signed with the emulator's account


def test_uris_carry_no_credentials_and_unknown_stores_are_refused() -> None:
    with pytest.raises(ArcHaloError, match="carry no credentials.*AWS_ACCESS_KEY_ID"):
        objectstore.open_store("s3://key:secret@bucket/prefix")  # pragma: allowlist secret
    with pytest.raises(ArcHaloError, match="unsupported external store 'ftp://host/x'"):
        objectstore.open_store("ftp://host/x")
    assert objectstore.parse_age("90m") == timedelta(minutes=90)
    for text in ("soon", "nan", "infh"):
        with pytest.raises(ArcHaloError, match=f"not an age: '{text}'"):
            objectstore.parse_age(text)
