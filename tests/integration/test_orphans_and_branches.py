"""Issue 18 §1: `arc-halo storage orphans --delete` never deletes an object that any database which may
reference it still references. Branches copy tensor_metadata, so a branch shares its parent's objects;
the sweep checks the whole family (the root and every database whose branch mark leads to it), from
whichever member it runs on. Where the family cannot be known, --delete refuses in one line.

Point-in-time branches exist only on Neon (local branches copy the current state: `--at` needs Neon);
on Neon the sweep checks every branch the API lists, point-in-time ones included, and refuses without
NEON_API_KEY/NEON_PROJECT_ID or when a branch has no compute endpoint to check it through (tested
against a loopback server answering as Neon's API does; no Neon database is reached here).
"""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import psycopg
import pytest

from arc_halo import objectstore, tensors
from arc_halo.branches import LocalBranches
from cli_runner import arc_halo

# Each command chooses its database itself: none from this process's environment.
UNSET = ("ARC_HALO_DATABASE_URL", "NEON_DATABASE_URL", "NEON_API_KEY", "NEON_PROJECT_ID")


def arc(*args: str, isolated: bool = False, **env: str) -> subprocess.CompletedProcess:
    return arc_halo(*args, without=UNSET, isolated=isolated, timeout=300, **env)


def put(url: str, store, name: str, value: float) -> tuple[str, str]:
    """A tensor written to `store` in the database at `url`: (tensor id, object URI)."""
    with psycopg.connect(url) as conn:
        tensor_id = tensors.put(conn, np.full(16, value, dtype=np.float32), name, store=store)
        return tensor_id, tensors.info(conn, tensor_id).external_uri


def test_a_sweep_on_any_member_keeps_every_object_a_branch_still_uses(test_server, built_copy, tmp_path) -> None:
    main_url = test_server.url(built_copy)
    blobs = tmp_path / "blobs"
    store = objectstore.open_store(blobs.as_uri())
    shared_id, shared = put(main_url, store, "shared", 1.0)
    branch = LocalBranches(test_server.admin_url, main_database=built_copy)
    branch_url = branch.url(branch.create("feature").name)
    try:
        with psycopg.connect(main_url) as conn:  # main drops the tensor: now only the branch uses the object
            conn.execute("delete from tensor_metadata where tensor_id = %s", (shared_id,))
        branch_only_id, branch_only = put(branch_url, store, "branch-only", 2.0)
        _, main_only = put(main_url, store, "main-only", 3.0)
        orphan = blobs / "ab" / "left-by-a-killed-upload.tensor"
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(b"x" * 64)

        for url in (main_url, branch_url):  # the same answer from the root and from the branch
            listed = arc("storage", "orphans", blobs.as_uri(), "--older-than", "0s", ARC_HALO_DATABASE_URL=url)
            assert listed.returncode == 0, listed.stderr
            assert [line.split("\t")[0] for line in listed.stdout.splitlines()[:-1]] == [orphan.as_uri()]
            assert "checked in 2 database(s)" in listed.stdout
        deleted = arc("storage", "orphans", blobs.as_uri(), "--older-than", "0s", "--delete",
                      ARC_HALO_DATABASE_URL=main_url)
        assert deleted.returncode == 0, deleted.stderr
        assert "deleted 1 orphaned object(s), 64 bytes" in deleted.stdout
        assert not orphan.exists()
        remaining = {item.uri for item in objectstore.list_objects(blobs.as_uri())}
        assert remaining == {shared, branch_only, main_only}
        with psycopg.connect(branch_url) as conn:  # the branch still reads what it shares with main
            assert tensors.get(conn, shared_id).tolist() == [1.0] * 16
            assert tensors.get(conn, branch_only_id).tolist() == [2.0] * 16
    finally:
        branch.delete("feature")


def test_delete_refuses_where_the_databases_cannot_be_known(tmp_path) -> None:
    (tmp_path / "blobs").mkdir()
    prefix = (tmp_path / "blobs").as_uri()
    explicit = arc("storage", "orphans", prefix, "--delete", isolated=True,
                   ARC_HALO_DATABASE_URL="postgresql://u@/arc_halo?host=/nonexistent/socket")
    assert explicit.returncode == 2 and len(explicit.stderr.strip().splitlines()) == 1, explicit.stderr
    assert "--delete refused, nothing was deleted" in explicit.stderr and "explicit database URL" in explicit.stderr
    neon = arc("storage", "orphans", prefix, "--delete", isolated=True,
               NEON_DATABASE_URL="postgresql://u:secret@ep-cool-1.example.com/db?sslmode=require")  # pragma: allowlist secret
    assert neon.returncode == 2 and len(neon.stderr.strip().splitlines()) == 1, neon.stderr
    assert "--delete refused" in neon.stderr and "NEON_API_KEY" in neon.stderr and "secret" not in neon.stderr


def test_a_directory_that_does_not_exist_is_one_line(tmp_path) -> None:
    missing = arc("storage", "orphans", (tmp_path / "nowhere").as_uri(), isolated=True,
                  ARC_HALO_DATABASE_URL="postgresql://u@/arc_halo?host=/nonexistent/socket")
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    assert "no directory" in missing.stderr and "nowhere" in missing.stderr


@pytest.mark.parametrize("at", ["2026-11-26T12:00:00Z"])
def test_local_branches_have_no_point_in_time(test_server, built_copy, at) -> None:
    """What exists locally: branches of the current state only, so the family above is complete."""
    from datetime import datetime

    from arc_halo.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="need Neon"):
        LocalBranches(test_server.admin_url, main_database=built_copy).create(
            "past", at=datetime.fromisoformat(at.replace("Z", "+00:00")))


class NeonBranchesAndEndpoints(BaseHTTPRequestHandler):
    """Neon API v2's branch and endpoint listings for one project: main with a compute endpoint, and a
    point-in-time branch (parent_timestamp) without one."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        bodies = {
            "/projects/p-1/branches": {"branches": [
                {"id": "br-main", "name": "main", "parent_id": None, "default": True},
                {"id": "br-past", "name": "restore-point", "parent_id": "br-main",
                 "parent_timestamp": "2026-11-26T12:00:00Z"}]},
            "/projects/p-1/endpoints": {"endpoints": [
                {"id": "ep-1", "branch_id": "br-main", "type": "read_write", "host": "ep-1.example.com"}]},
        }
        body = json.dumps(bodies.get(self.path, {})).encode()
        self.send_response(200 if self.path in bodies else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_on_neon_a_branch_that_cannot_be_checked_stops_the_delete(tmp_path) -> None:
    (tmp_path / "blobs").mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), NeonBranchesAndEndpoints)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = arc("storage", "orphans", (tmp_path / "blobs").as_uri(), "--delete",
                     NEON_DATABASE_URL="postgresql://u@ep-1.example.com/db?sslmode=require",
                     NEON_API_KEY="test-key", NEON_PROJECT_ID="p-1", NEON_API_URL=f"http://127.0.0.1:{server.server_port}")  # pragma: allowlist secret
    finally:
        server.shutdown()
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "--delete refused" in result.stderr and "Neon branch 'restore-point' has no read-write compute endpoint" \
        in result.stderr
