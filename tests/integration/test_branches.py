"""Issue 6: branches. Local branches are tested for real on PostgreSQL; the Neon side is tested against
a loopback HTTP server that answers as Neon's documented API does (not against Neon itself)."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from arc_halo.branches import LocalBranches, NeonBranches
from arc_halo.errors import ArcHaloError
from rows import insert_everything, row_counts


@pytest.fixture
def local(test_server, built_copy):
    with psycopg.connect(test_server.url(built_copy)) as conn:
        insert_everything(conn)
        conn.commit()
    manager = LocalBranches(test_server.admin_url, main_database=built_copy)
    yield manager
    for branch in manager.list():
        manager.delete(branch.name)


def test_local_branch_holds_the_same_rows_and_isolates_writes(local) -> None:
    with psycopg.connect(local.url(None)) as conn:
        main_before = row_counts(conn)
    created = local.create("feature-1")
    assert created.parent == "main"
    with psycopg.connect(local.url("feature-1")) as conn:
        assert row_counts(conn) == main_before
        conn.execute("delete from models where model_name like 'everything-2%%' and not exists"
                     " (select from reactor_models r where r.model_id = models.model_id)")
        conn.execute("update models set description = 'only on the branch'")
        conn.commit()
    with psycopg.connect(local.url(None)) as conn:
        assert row_counts(conn) == main_before
        assert conn.execute("select count(*) from models where description = 'only on the branch'").fetchone()[0] == 0
    assert [(b.name, b.parent) for b in local.list()] == [("feature-1", "main")]


def test_local_reset_and_delete(local) -> None:
    local.create("feature-2")
    with psycopg.connect(local.url("feature-2")) as conn:
        conn.execute("update models set description = 'changed'")
        conn.commit()
    local.reset("feature-2")
    with psycopg.connect(local.url("feature-2")) as conn:
        assert conn.execute("select count(*) from models where description = 'changed'").fetchone()[0] == 0
    local.delete("feature-2")
    assert local.list() == []
    with pytest.raises(ArcHaloError, match="no branch 'feature-2'"):
        local.delete("feature-2")


@pytest.mark.parametrize("name", ["Feature", "-x", "a_b", "x" * 41, "", "a/b", "main"])
def test_branch_names_are_validated(local, name) -> None:
    with pytest.raises(ArcHaloError, match="is invalid|names the main database"):
        local.create(name)


def test_local_point_in_time_is_refused_clearly(local) -> None:
    with pytest.raises(ArcHaloError, match="need Neon"):
        local.create("pitr", at=datetime(2026, 1, 1, tzinfo=timezone.utc))


class FakeNeon(BaseHTTPRequestHandler):
    """The four branch endpoints of Neon's API v2, in memory."""

    state: dict = {}

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _reply(self, status: int, body: dict | None = None) -> None:
        payload = json.dumps(body or {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _authorised(self) -> bool:
        self.state["requests"].append((self.command, self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != "Bearer test-key" or not self.path.startswith("/api/v2/projects/proj-1/"):
            self._reply(401, {"message": "unauthorized"})
            return False
        return True

    def _body(self) -> dict:
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")

    def do_GET(self) -> None:
        if self._authorised():
            self._reply(200, {"branches": list(self.state["branches"].values())})

    def do_POST(self) -> None:
        if not self._authorised():
            return
        body = self._body()
        parts = self.path.split("/")
        if self.path.endswith("/branches"):
            spec = body["branch"]
            branch_id = f"br-{len(self.state['branches']) + 1}"
            branch = {"id": branch_id, "name": spec["name"], "parent_id": spec.get("parent_id", "br-main"),
                      "parent_timestamp": spec.get("parent_timestamp")}
            self.state["branches"][branch_id] = branch
            self.state["bodies"].append(body)
            self._reply(201, {"branch": branch, "endpoints": [{"type": "read_write"}]})
        elif self.path.endswith("/restore"):
            self.state["restores"].append((parts[-2], body["source_branch_id"]))
            self._reply(200, {"branch": self.state["branches"][parts[-2]]})
        else:
            self._reply(404, {"message": "not found"})

    def do_DELETE(self) -> None:
        if self._authorised():
            branch_id = self.path.split("/")[-1]
            if self.state["branches"].pop(branch_id, None) is None:
                self._reply(404, {"message": "branch not found"})
            else:
                self._reply(200, {})


@pytest.fixture
def neon():
    FakeNeon.state = {"branches": {"br-main": {"id": "br-main", "name": "main", "parent_id": None}},
                      "requests": [], "bodies": [], "restores": []}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeNeon)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield NeonBranches("test-key", "proj-1", base_url=f"http://127.0.0.1:{server.server_port}/api/v2"), FakeNeon.state
    server.shutdown()


def test_neon_create_list_reset_delete(neon) -> None:
    client, state = neon
    created = client.create("pr-17")
    assert created.detail == "br-2"
    assert state["bodies"][-1] == {"branch": {"name": "pr-17"}, "endpoints": [{"type": "read_write"}]}
    child = client.create("pr-17-debug", parent="pr-17")
    assert state["bodies"][-1]["branch"]["parent_id"] == "br-2"
    gets = sum(1 for method, _, _ in state["requests"] if method == "GET")
    assert {(b.name, b.parent) for b in client.list()} == {("main", None), ("pr-17", "main"), ("pr-17-debug", "pr-17")}
    assert sum(1 for method, _, _ in state["requests"] if method == "GET") == gets + 1  # one API call per listing
    client.reset("pr-17-debug")
    assert state["restores"] == [(child.detail, "br-2")]
    client.delete("pr-17-debug")
    assert "br-3" not in state["branches"]
    assert all(auth == "Bearer test-key" for _, _, auth in state["requests"])


def test_neon_point_in_time_branch(neon) -> None:
    client, state = neon
    client.create("restore-1", at=datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc))
    assert state["bodies"][-1]["branch"]["parent_timestamp"] == "2026-11-20T12:00:00Z"
    with pytest.raises(ArcHaloError, match="needs a time zone"):
        client.create("restore-2", at=datetime(2026, 11, 20, 12, 0))


def test_neon_errors_are_one_clear_line(neon) -> None:
    client, _ = neon
    with pytest.raises(ArcHaloError, match="no Neon branch 'ghost'"):
        client.delete("ghost")
    wrong = NeonBranches("bad-key", "proj-1", base_url=client.base_url)
    with pytest.raises(ArcHaloError, match="HTTP 401"):
        wrong.list()
    with pytest.raises(ArcHaloError, match="must use https"):
        NeonBranches("k", "p", base_url="http://api.example.com/api/v2")
