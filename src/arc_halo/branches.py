"""Database branches for development and tests, one interface for both worlds.

Local: a branch is a copy of a database on the embedded server (CREATE DATABASE ... TEMPLATE),
named arc_halo__<branch>; ARC_HALO_BRANCH=<branch> points dbt and the library at it.
Neon: the same operations through the Neon API (branches are copy-on-write there, and can start
from a past timestamp for point-in-time recovery).
"""

from __future__ import annotations

import json
import os
import uuid
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from arc_halo import config, embedded, retries, targets
from arc_halo.conninfo import check_libpq_transport, connection_string, is_local_host
from arc_halo.errors import ArcHaloError, ConfigurationError, InvalidInputError, NotFoundError
from arc_halo.branch_names import branch_database, validate_branch_name
from arc_halo.rows import one_value

NEON_API = "https://console.neon.tech/api/v2"
# HTTP 423: another operation on the branch is still running (e.g. a reset right after a create);
# retried as neonctl does, 5 more times, 3 s apart.
NEON_LOCKED_RETRIES = 5
NEON_LOCKED_RETRY_SECONDS = 3.0
# The mark of a database the branch tool made: its comment, which also records the database it copies
# (what reset copies again). reset and delete touch no database without it.
PARENT_COMMENT = "arc-halo branch of "
# Scratch names for reset's fresh copy and the replaced branch; '_' never occurs in a branch name.
SCRATCH_PREFIX = "arc_halo_reset_"


@dataclass(frozen=True)
class Branch:
    name: str
    parent: str | None
    detail: str = ""


class LocalBranches:
    """Branches as template copies of databases on one PostgreSQL server."""

    def __init__(self, admin_url: str, main_database: str = config.LOCAL_DATABASE):
        check_libpq_transport(admin_url, "local branches' server")
        self.admin_url = admin_url
        self.main = main_database

    def _database(self, branch: str | None) -> str:
        return branch_database(self.main, branch)

    def _exists(self, conn: psycopg.Connection, database: str) -> bool:
        return conn.execute("select 1 from pg_database where datname = %s", (database,)).fetchone() is not None

    def _copy(self, conn: psycopg.Connection, source: str, target: str) -> None:
        """Copy `source` to `target` and mark it as a branch of `source`. A copy that fails leaves
        no `target` behind."""
        try:
            conn.execute(sql.SQL("create database {} template {}").format(
                sql.Identifier(target), sql.Identifier(source)))
        except psycopg.errors.ObjectInUse:
            connected = one_value(conn.execute("select count(*) from pg_stat_activity where datname = %s", (source,)))
            raise ConfigurationError(
                f"database {source} has {connected} open connection(s); PostgreSQL copies a database only when "
                "nobody is connected: close them (psql, apps) and try again") from None
        try:
            conn.execute(sql.SQL("comment on database {} is {}").format(
                sql.Identifier(target), sql.Literal(PARENT_COMMENT + source)))
        except BaseException:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(target)))
            raise

    def _branch_parent(self, conn: psycopg.Connection, name: str) -> str:
        """The database a branch copies, from its mark; refuses main and any database the branch tool
        did not make."""
        if name == "main":
            raise InvalidInputError("'main' is the main database, not a branch: reset and delete change only "
                                    "branches that `arc-halo branch create` made")
        target = self._database(validate_branch_name(name))
        row = conn.execute("select shobj_description(oid, 'pg_database') from pg_database where datname = %s",
                           (target,)).fetchone()
        if row is None:
            raise NotFoundError(f"no branch {name!r} (database {target})")
        parent = self._parent_database(row[0])
        if parent is None:
            raise InvalidInputError(f"database {target} was not made by `arc-halo branch create` (it has no branch "
                                    "mark); refusing to change it")
        return parent

    @staticmethod
    def _parent_database(comment: str | None) -> str | None:
        if not comment or not comment.startswith(PARENT_COMMENT):
            return None
        return comment.removeprefix(PARENT_COMMENT) or None

    def create(self, name: str, parent: str | None = None, at: datetime | None = None) -> Branch:
        if at is not None:
            raise InvalidInputError("local branches copy the current state; branches from a past timestamp need Neon "
                                    "(ARC_HALO_TARGET=neon)")
        target, source = self._database(validate_branch_name(name)), self._database(parent)
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            if self._exists(conn, target):
                raise InvalidInputError(f"branch {name!r} already exists (database {target})")
            if not self._exists(conn, source):
                raise NotFoundError(f"parent {parent or 'main'!r} does not exist (database {source})")
            self._copy(conn, source, target)
        return Branch(name, parent or "main", target)

    def list(self) -> list[Branch]:
        prefix = f"{self.main}__"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            rows = conn.execute(
                "select datname, shobj_description(oid, 'pg_database') from pg_database"
                " where starts_with(datname, %s) order by datname", (prefix,)).fetchall()
        return [Branch(name[len(prefix):], self._branch_of(self._parent_database(comment)), name)
                for name, comment in rows if self._parent_database(comment)]

    def _branch_of(self, database: str | None) -> str | None:
        if not database:
            return None
        return "main" if database == self.main else database.removeprefix(f"{self.main}__")

    def reset(self, name: str) -> Branch:
        """Throw the branch's changes away: copy its parent again. The copy is made under a scratch name
        first and swapped in, so a copy that fails leaves the branch as it was."""
        fresh = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            source = self._branch_parent(conn, name)
            target = self._database(name)
            if not self._exists(conn, source):
                raise NotFoundError(f"the parent of branch {name!r} (database {source}) no longer exists; "
                                    "delete the branch and create it again")
            self._copy(conn, source, fresh)
            try:
                self._swap(conn, fresh, target)
            finally:
                conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(fresh)))
        return Branch(name, source, target)

    def _swap(self, conn: psycopg.Connection, fresh: str, target: str) -> None:
        """Put `fresh` in `target`'s place in one transaction (both renames or neither); `fresh` then
        names the replaced copy, which the caller drops."""
        parked = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}"
        rename = "alter database {} rename to {}"
        conn.execute(sql.SQL("alter database {} allow_connections false").format(sql.Identifier(target)))
        try:
            conn.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (target,))
            with conn.transaction():
                for old, new in ((target, parked), (fresh, target), (parked, fresh)):
                    conn.execute(sql.SQL(rename).format(sql.Identifier(old), sql.Identifier(new)))
        except psycopg.errors.ObjectInUse:
            raise ConfigurationError(f"database {target} stayed in use; the branch is unchanged: close its "
                                     "connections and reset again") from None
        finally:  # the fresh copy after the swap, the untouched branch after a failure
            conn.execute(sql.SQL("alter database {} allow_connections true").format(sql.Identifier(target)))

    def delete(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            self._branch_parent(conn, name)
            target = self._database(name)
            conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(target)))

    def url(self, name: str | None) -> str:
        return connection_string(self.admin_url, dbname=self._database(name))


class _BranchLocked(Exception):
    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class NeonBranches:
    """The same operations on Neon through its HTTP API (plain urllib: four calls need no SDK)."""

    def __init__(self, api_key: str, project_id: str, base_url: str | None = None, timeout: float = 30,
                 locked_retry_seconds: float = NEON_LOCKED_RETRY_SECONDS):
        self.api_key, self.project_id, self.timeout = api_key, project_id, timeout
        self.locked_retry_seconds = locked_retry_seconds
        self.base_url = (base_url or os.environ.get("NEON_API_URL") or NEON_API).rstrip("/")
        parsed = urlparse(self.base_url)
        if parsed.scheme != "https" and not is_local_host(parsed.hostname):
            raise ConfigurationError(f"NEON_API_URL {self.base_url} must use https")

    @classmethod
    def from_environment(cls) -> NeonBranches:
        targets.require_variables(("NEON_API_KEY", "NEON_PROJECT_ID"), "neon branches")
        return cls(os.environ["NEON_API_KEY"], os.environ["NEON_PROJECT_ID"])

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        wait = self.locked_retry_seconds
        try:
            for attempt in retries.attempts(_BranchLocked, tries=NEON_LOCKED_RETRIES + 1, first_delay=wait,
                                            max_delay=wait, growth=1):
                with attempt:
                    return self._call_once(method, path, body)
            raise AssertionError("unreachable: the last attempt returns or raises")
        except _BranchLocked as locked:
            raise ConfigurationError(f"Neon API {method} {path} failed with HTTP 423 after "
                                     f"{NEON_LOCKED_RETRIES + 1} attempts (an operation on the branch is still "
                                     f"running): {locked.detail}; try again in a minute") from None

    def _call_once(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
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
            if exc.code == 423:
                raise _BranchLocked(detail) from None
            raise ConfigurationError(f"Neon API {method} {path} failed with HTTP {exc.code}: {detail}") from exc
        except urllib.error.URLError as exc:
            raise ConfigurationError(f"cannot reach the Neon API at {self.base_url}: {exc.reason}") from exc
        answer: dict[str, Any] = json.loads(payload) if payload else {}
        return answer

    def _branches(self) -> list[dict[str, Any]]:
        branches: list[dict[str, Any]] = self._call("GET", "/branches").get("branches", [])
        return branches

    def branch_hosts(self) -> dict[str, str | None]:
        """Every branch's name -> the host of its read-write compute endpoint (None: it has none)."""
        endpoints = self._call("GET", "/endpoints").get("endpoints", [])
        hosts = {e["branch_id"]: e.get("host") for e in endpoints if e.get("type", "read_write") == "read_write"}
        return {branch["name"]: hosts.get(branch["id"]) for branch in self._branches()}

    def _find(self, name: str) -> dict[str, Any]:
        for branch in self._branches():
            if branch["name"] == name:
                return branch
        raise NotFoundError(f"no Neon branch {name!r} in project {self.project_id}")

    def create(self, name: str, parent: str | None = None, at: datetime | None = None) -> Branch:
        spec: dict[str, Any] = {"name": validate_branch_name(name)}
        if parent:
            spec["parent_id"] = self._find(parent)["id"]
        if at is not None:
            if at.tzinfo is None:
                raise InvalidInputError("--at needs a time zone, e.g. 2026-11-26T12:00:00Z")
            spec["parent_timestamp"] = at.isoformat().replace("+00:00", "Z")
        created = self._call("POST", "/branches", {"branch": spec, "endpoints": [{"type": "read_write"}]})["branch"]
        return Branch(created["name"], parent, created["id"])

    def list(self) -> list[Branch]:
        branches = self._branches()
        by_id = {b["id"]: b["name"] for b in branches}
        return [Branch(b["name"], by_id.get(b.get("parent_id")), b["id"]) for b in branches]

    def _changeable(self, name: str) -> dict[str, Any]:
        """The branch `name`, unless it is the project's default (primary) or a protected branch."""
        branch = self._find(name)
        if branch.get("default") or branch.get("primary"):
            raise InvalidInputError(f"Neon branch {name!r} is the project's default branch; refusing to reset or "
                                    "delete it")
        if branch.get("protected"):
            raise InvalidInputError(f"Neon branch {name!r} is protected; refusing to reset or delete it")
        return branch

    def reset(self, name: str) -> Branch:
        branch = self._changeable(name)
        if not branch.get("parent_id"):
            raise InvalidInputError(f"Neon branch {name!r} has no parent to reset to")
        self._call("POST", f"/branches/{branch['id']}/restore", {"source_branch_id": branch["parent_id"]})
        return Branch(name, branch["parent_id"], branch["id"])

    def delete(self, name: str) -> None:
        self._call("DELETE", f"/branches/{self._changeable(name)['id']}")


def for_target() -> NeonBranches | LocalBranches:
    """Neon's API for the neon target, the embedded server otherwise."""
    if targets.current_target() == "neon":
        return NeonBranches.from_environment()
    server = embedded.ensure_running()
    embedded.ensure_database(server)
    return LocalBranches(server.url("postgres"))


def referencing_databases(url: str | None = None) -> list[str]:
    """Connection strings of every database that may reference the stored objects the database at `url`
    (default: the library's) references: branches share objects with their parent, so this is the whole
    family. On the embedded server: the family's root and every database whose branch mark leads to it.
    On Neon: every branch of the project (NEON_API_KEY, NEON_PROJECT_ID), through its compute endpoint.
    Raises ConfigurationError, saying why, where the set cannot be known (any other explicit URL)."""
    if url is None:
        configured = targets.configured_database_url()
        if configured is None:
            return _embedded_family(embedded.ensure_running().url(targets.local_database()))
        url = configured.url
    server = embedded.status()
    if server is not None and conninfo_to_dict(url).get("host") == str(server.socket_dir):
        return _embedded_family(url)
    if os.environ.get("NEON_DATABASE_URL") == url:
        return _neon_family(url)
    raise ConfigurationError("the databases that may share objects with this one (its branches and copies) cannot "
                             "be listed for an explicit database URL; use the local target or Neon (NEON_DATABASE_URL "
                             "with NEON_API_KEY and NEON_PROJECT_ID)")


def _embedded_family(url: str) -> list[str]:
    check_libpq_transport(url, "database URL")
    database = str(conninfo_to_dict(url).get("dbname") or config.LOCAL_DATABASE)  # parsed from text: a str
    with psycopg.connect(connection_string(url, dbname="postgres"), autocommit=True) as conn:
        parents = {name: LocalBranches._parent_database(comment) for name, comment in conn.execute(
            "select datname, shobj_description(oid, 'pg_database') from pg_database where datallowconn")}

    def root(name: str) -> str:
        seen = {name}
        while (parent := parents.get(name)) and parent not in seen:
            name = parent
            seen.add(name)
        return name

    family_root = root(database)
    return [connection_string(url, dbname=name) for name in sorted(parents) if root(name) == family_root]


def _neon_family(url: str) -> list[str]:
    try:
        neon = NeonBranches.from_environment()
    except ArcHaloError as exc:
        raise ConfigurationError(f"on Neon every branch may share objects with this database, and listing them "
                                 f"needs the Neon API: {exc}") from None
    urls = []
    for name, host in sorted(neon.branch_hosts().items()):
        if not host:
            raise ConfigurationError(f"Neon branch {name!r} has no read-write compute endpoint, so its references "
                                     "cannot be checked: add one (or delete the branch) first")
        urls.append(connection_string(url, host=host))
    return urls
