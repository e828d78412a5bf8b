"""Issue 3, the seed's psql path: db/schema/00_master_schema.sql is current, builds the same catalog
as `dbt build`, and never changes a database that already has the schema."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from arc_halo import config, embedded, schema_export
from catalog import snapshot
from rows import insert_everything, row_counts

MASTER = config.project_dir() / schema_export.MASTER_FILE


def psql_file(url: str) -> subprocess.CompletedProcess:
    psql = embedded.bin_dir(18) / "psql"
    return subprocess.run([str(psql), url, "-X", "-q", "-f", str(MASTER)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def server_major(test_server) -> int:
    with psycopg.connect(test_server.admin_url) as conn:
        return conn.info.server_version // 10000


def test_master_schema_is_up_to_date(test_server, template_database, server_major) -> None:
    if server_major != 18:
        pytest.skip("the committed file is generated on PostgreSQL 18; this server is " + str(server_major))
    current = schema_export.render(test_server.url(template_database))
    assert current == MASTER.read_text(), "db/schema/00_master_schema.sql is stale: run `make schema` and commit it"


def test_psql_path_builds_the_same_catalog(test_server, template_database, fresh_database) -> None:
    with psycopg.connect(test_server.url(fresh_database), autocommit=True) as conn:
        conn.execute("drop extension vector")  # the file must create it itself, as on a new Neon database
    result = psql_file(test_server.url(fresh_database))
    assert result.returncode == 0, result.stderr
    expected, actual = snapshot(test_server.url(template_database)), snapshot(test_server.url(fresh_database))
    for part in expected:
        assert actual[part] == expected[part], part
    with psycopg.connect(test_server.url(fresh_database)) as conn:
        assert conn.execute("select count(*) from tensor_dtypes").fetchone()[0] >= 17


def test_psql_path_refuses_an_existing_schema_and_changes_nothing(test_server, built_copy) -> None:
    url = test_server.url(built_copy)
    with psycopg.connect(url) as conn:
        insert_everything(conn)
        conn.commit()
        before = row_counts(conn)
    catalog_before = snapshot(url)
    result = psql_file(url)
    assert result.returncode != 0
    assert "Arc-Halo schema already exists in this database; nothing was changed" in result.stderr
    with psycopg.connect(url) as conn:
        assert row_counts(conn) == before
    assert snapshot(url) == catalog_before
