"""Database branches for development and tests, one interface for both worlds.

Local: a branch is a copy of a database on the embedded server (CREATE DATABASE ... TEMPLATE),
named arc_halo__<branch>; ARC_HALO_BRANCH=<branch> points dbt and the library at it.
Neon: the same operations through the Neon API (branches are copy-on-write there, and can start
from a past timestamp for point-in-time recovery).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlparse

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from arc_halo import config
from arc_halo.errors import ArcHaloError

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
NEON_API = "https://console.neon.tech/api/v2"
PARENT_COMMENT = "arc-halo branch of "  # a local branch's database comment records the database it copies


@dataclass(frozen=True)
class Branch:
    name: str
    parent: str | None
    detail: str = ""


def validate_name(name: str) -> str:
    if name == "main":
        raise ArcHaloError("'main' names the main database, not a branch: choose another name")
    if not NAME_PATTERN.match(name):
        raise ArcHaloError(f"branch name {name!r} is invalid: use 1-40 lowercase letters, digits and '-', starting with a letter or digit")
    return name


def branch_database(main: str, branch: str | None) -> str:
    """main itself for no branch (or "main"), else <main>__<branch>."""
    return main if branch in (None, "main") else f"{main}__{validate_name(branch)}"


class LocalBranches:
    """Branches as template copies of databases on one PostgreSQL server."""

    def __init__(self, admin_url: str, main_database: str = config.LOCAL_DATABASE):
        self.admin_url = admin_url
        self.main = main_database

    def _database(self, branch: str | None) -> str:
        return branch_database(self.main, branch)

    def _exists(self, conn: psycopg.Connection, database: str) -> bool:
        return conn.execute("select 1 from pg_database where datname = %s", (database,)).fetchone() is not None

    def _copy(self, conn: psycopg.Connection, source: str, target: str) -> None:
        """Copy `source` to `target` and record `source` as the parent (what reset copies again)."""
        others = conn.execute("select count(*) from pg_stat_activity where datname = %s and pid <> pg_backend_pid()",
                              (source,)).fetchone()[0]
        if others:
            raise ArcHaloError(f"database {source} has {others} open connection(s); PostgreSQL copies a database only "
                               "when nobody is connected: close them (psql, apps) and try again")
        conn.execute(sql.SQL("create database {} template {}").format(sql.Identifier(target), sql.Identifier(source)))
        conn.execute(sql.SQL("comment on database {} is {}").format(
            sql.Identifier(target), sql.Literal(PARENT_COMMENT + source)))

    @staticmethod
    def _parent_database(comment: str | None) -> str | None:
        return (comment or "").removeprefix(PARENT_COMMENT) or None

    def create(self, name: str, parent: str | None = None, at: datetime | None = None) -> Branch:
        if at is not None:
            raise ArcHaloError("local branches copy the current state; branches from a past timestamp need Neon "
                               "(ARC_HALO_TARGET=neon)")
        target, source = self._database(validate_name(name)), self._database(parent)
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            if self._exists(conn, target):
                raise ArcHaloError(f"branch {name!r} already exists (database {target})")
            if not self._exists(conn, source):
                raise ArcHaloError(f"parent {parent or 'main'!r} does not exist (database {source})")
            self._copy(conn, source, target)
        return Branch(name, parent or "main", target)

    def list(self) -> list[Branch]:
        prefix = f"{self.main}__"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            rows = conn.execute(
                "select datname, shobj_description(oid, 'pg_database') from pg_database"
                " where starts_with(datname, %s) order by datname", (prefix,)).fetchall()
        return [Branch(name[len(prefix):], self._branch_of(self._parent_database(comment)), name)
                for name, comment in rows]

    def _branch_of(self, database: str | None) -> str | None:
        if not database:
            return None
        return "main" if database == self.main else database.removeprefix(f"{self.main}__")

    def reset(self, name: str) -> Branch:
        """Throw the branch's changes away: copy its parent again."""
        target = self._database(name)
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            comment = conn.execute("select shobj_description(oid, 'pg_database') from pg_database where datname = %s",
                                   (target,)).fetchone()
            if comment is None:
                raise ArcHaloError(f"no branch {name!r}")
            source = self._parent_database(comment[0]) or self.main
            conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(target)))
            self._copy(conn, source, target)
        return Branch(name, source, target)

    def delete(self, name: str) -> None:
        target = self._database(name)
        if target == self.main:
            raise ArcHaloError("the main database is not a branch and cannot be deleted this way")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            if not self._exists(conn, target):
                raise ArcHaloError(f"no branch {name!r}")
            conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(target)))

    def url(self, name: str | None) -> str:
        return make_conninfo(self.admin_url, dbname=self._database(name))


class NeonBranches:
    """The same operations on Neon through its HTTP API (plain urllib: four calls need no SDK)."""

    def __init__(self, api_key: str, project_id: str, base_url: str | None = None, timeout: float = 30):
        self.api_key, self.project_id, self.timeout = api_key, project_id, timeout
        self.base_url = (base_url or os.environ.get("NEON_API_URL") or NEON_API).rstrip("/")
        parsed = urlparse(self.base_url)
        if parsed.scheme != "https" and not config.is_local_host(parsed.hostname):
            raise ArcHaloError(f"NEON_API_URL {self.base_url} must use https")

    @classmethod
    def from_environment(cls) -> NeonBranches:
        config.require_variables(("NEON_API_KEY", "NEON_PROJECT_ID"), "neon branches")
        return cls(os.environ["NEON_API_KEY"], os.environ["NEON_PROJECT_ID"])

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.base_url}/projects/{self.project_id}{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.api_key}", "Accept": "application/json",
                     "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise ArcHaloError(f"Neon API {method} {path} failed with HTTP {exc.code}: {detail}") from exc
        except urllib.error.URLError as exc:
            raise ArcHaloError(f"cannot reach the Neon API at {self.base_url}: {exc.reason}") from exc
        return json.loads(payload) if payload else {}

    def _branches(self) -> list[dict]:
        return self._call("GET", "/branches").get("branches", [])

    def _find(self, name: str) -> dict:
        for branch in self._branches():
            if branch["name"] == name:
                return branch
        raise ArcHaloError(f"no Neon branch {name!r} in project {self.project_id}")

    def create(self, name: str, parent: str | None = None, at: datetime | None = None) -> Branch:
        spec: dict = {"name": validate_name(name)}
        if parent:
            spec["parent_id"] = self._find(parent)["id"]
        if at is not None:
            if at.tzinfo is None:
                raise ArcHaloError("--at needs a time zone, e.g. 2026-11-26T12:00:00Z")
            spec["parent_timestamp"] = at.isoformat().replace("+00:00", "Z")
        created = self._call("POST", "/branches", {"branch": spec, "endpoints": [{"type": "read_write"}]})["branch"]
        return Branch(created["name"], parent, created["id"])

    def list(self) -> list[Branch]:
        branches = self._branches()
        by_id = {b["id"]: b["name"] for b in branches}
        return [Branch(b["name"], by_id.get(b.get("parent_id")), b["id"]) for b in branches]

    def reset(self, name: str) -> Branch:
        branch = self._find(name)
        if not branch.get("parent_id"):
            raise ArcHaloError(f"Neon branch {name!r} has no parent to reset to")
        self._call("POST", f"/branches/{branch['id']}/restore", {"source_branch_id": branch["parent_id"]})
        return Branch(name, branch["parent_id"], branch["id"])

    def delete(self, name: str) -> None:
        self._call("DELETE", f"/branches/{self._find(name)['id']}")


def for_target():
    """Neon's API for the neon target, the embedded server otherwise."""
    if config.current_target() == "neon":
        return NeonBranches.from_environment()
    from arc_halo import embedded

    server = embedded.ensure_running()
    embedded.ensure_database(server)
    return LocalBranches(server.url("postgres"))
