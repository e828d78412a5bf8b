"""Issue 6: branches. Local branches are tested for real on PostgreSQL; the Neon side is tested against
a loopback HTTP server that answers as Neon's documented API does (not against Neon itself)."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from psycopg import sql

from arc_halo.branches import SCRATCH_PREFIX, LocalBranches, NeonBranches
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


@pytest.mark.parametrize("verb", ["reset", "delete"])
def test_main_is_never_reset_or_deleted(local, verb) -> None:
    with psycopg.connect(local.url(None)) as conn:
        before = row_counts(conn)
    with pytest.raises(ArcHaloError, match="'main' is the main database, not a branch"):
        getattr(local, verb)("main")
    with psycopg.connect(local.url(None)) as conn:
        assert row_counts(conn) == before


@pytest.mark.parametrize("verb", ["reset", "delete"])
def test_a_database_the_branch_tool_did_not_make_is_refused(local, test_server, verb) -> None:
    """A database named like a branch but without the branch mark (made by hand, restored from a dump)."""
    unmarked = f"{local.main}__by-hand"
    with psycopg.connect(test_server.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {} template {}").format(sql.Identifier(unmarked),
                                                                      sql.Identifier(local.main)))
    try:
        with pytest.raises(ArcHaloError, match="was not made by `arc-halo branch create`"):
            getattr(local, verb)("by-hand")
        with psycopg.connect(test_server.url(unmarked)) as conn:
            assert conn.execute("select count(*) from models").fetchone()[0] > 0
        assert "by-hand" not in [branch.name for branch in local.list()]
    finally:
        test_server.drop_database(unmarked)


def test_a_reset_whose_copy_fails_leaves_the_branch_as_it_was(local, test_server) -> None:
    local.create("feature-3")
    with psycopg.connect(local.url("feature-3")) as conn:
        conn.execute("update models set description = 'kept'")
        conn.commit()
        kept = row_counts(conn)
    # PostgreSQL copies a database only when nobody is connected to it: an open connection to the
    # parent makes CREATE DATABASE ... TEMPLATE fail.
    with psycopg.connect(local.url(None)):
        with pytest.raises(ArcHaloError, match="open connection"):
            local.reset("feature-3")
    with psycopg.connect(local.url("feature-3")) as conn:
        assert row_counts(conn) == kept
        assert conn.execute("select count(*) from models where description = 'kept'").fetchone()[0] == kept["models"]
    with psycopg.connect(test_server.admin_url) as conn:
        assert conn.execute("select count(*) from pg_database where starts_with(datname, %s)",
                            (SCRATCH_PREFIX,)).fetchone()[0] == 0
    local.reset("feature-3")  # with the parent free again, the reset goes through
    with psycopg.connect(local.url("feature-3")) as conn:
        assert conn.execute("select count(*) from models where description = 'kept'").fetchone()[0] == 0
    assert [(b.name, b.parent) for b in local.list()] == [("feature-3", "main")]


def test_reset_swaps_while_the_branch_is_in_use(local) -> None:
    """Connections to the branch are ended by the swap; the branch keeps its name and mark."""
    local.create("feature-4")
    holder = psycopg.connect(local.url("feature-4"))
    holder.execute("update models set description = 'gone after reset'")
    holder.commit()
    local.reset("feature-4")
    with pytest.raises(psycopg.OperationalError):
        holder.execute("select 1")
    with psycopg.connect(local.url("feature-4")) as conn:
        assert conn.execute("select count(*) from models where description = 'gone after reset'").fetchone()[0] == 0
    assert [(b.name, b.parent) for b in local.list()] == [("feature-4", "main")]


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
                      "parent_timestamp": spec.get("parent_timestamp"), "default": False, "primary": False,
                      "protected": spec.get("protected", False)}
            self.state["branches"][branch_id] = branch
            self.state["bodies"].append(body)
            self._reply(201, {"branch": branch, "endpoints": [{"type": "read_write"}]})
        elif self.path.endswith("/restore") and self.state["locked"] > 0:
            self.state["locked"] -= 1  # Neon: an operation on the branch is still in progress
            self._reply(423, {"message": "branch is locked by an operation in progress"})
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
    # Neon marks the project's default branch with "default" (and the older "primary") in every listing.
    FakeNeon.state = {"branches": {"br-main": {"id": "br-main", "name": "main", "parent_id": None,
                                               "default": True, "primary": True}},
                      "requests": [], "bodies": [], "restores": [], "locked": 0}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeNeon)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield (NeonBranches("test-key", "proj-1", base_url=f"http://127.0.0.1:{server.server_port}/api/v2",
                        locked_retry_seconds=0.01), FakeNeon.state)
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


def test_neon_retries_a_branch_that_is_still_locked_by_an_operation(neon) -> None:
    client, state = neon
    client.create("pr-18")
    state["locked"] = 5  # a reset right after the create: Neon answers 423 until the create settles
    client.reset("pr-18")
    restores = [path for method, path, _ in state["requests"] if method == "POST" and path.endswith("/restore")]
    assert len(restores) == 6 and state["restores"] == [("br-2", "br-main")]
    state["locked"] = 6  # still locked after 5 retries: one line, saying so
    with pytest.raises(ArcHaloError, match="HTTP 423 after 6 attempts"):
        client.reset("pr-18")


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


@pytest.mark.parametrize("verb", ["reset", "delete"])
def test_neon_default_and_protected_branches_are_never_reset_or_deleted(neon, verb) -> None:
    client, state = neon
    state["branches"]["br-prod"] = {"id": "br-prod", "name": "production", "parent_id": "br-main",
                                    "default": False, "primary": False, "protected": True}
    with pytest.raises(ArcHaloError, match="'main' is the project's default branch"):
        getattr(client, verb)("main")
    with pytest.raises(ArcHaloError, match="'production' is protected"):
        getattr(client, verb)("production")
    assert [method for method, _, _ in state["requests"]] == ["GET", "GET"]  # nothing but the two lookups
    assert state["restores"] == [] and {"br-main", "br-prod"} <= set(state["branches"])


def test_the_cli_refuses_main_and_an_invalid_branch_variable_in_one_line(test_server) -> None:
    from test_errors_and_cli import arc, assert_one_line_user_error

    for verb in ("reset", "delete"):
        assert_one_line_user_error(arc("branch", verb, "main", ARC_HALO_TARGET="local"),
                                   "'main' is the main database, not a branch")
    assert_one_line_user_error(arc("db", "url", ARC_HALO_BRANCH="Feature_1"),
                               "ARC_HALO_BRANCH: branch name 'Feature_1' is invalid")
