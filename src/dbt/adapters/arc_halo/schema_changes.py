"""Schema changes the build makes outside dbt's statement-per-transaction model: pending migrations
before any model (on-run-start), and online DDL for the operational_table materialization."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dbt_common.exceptions import DbtRuntimeError

from arc_halo import migrations, online_ddl
from arc_halo.conninfo import connection_string
from arc_halo.errors import ArcHaloError

if TYPE_CHECKING:  # the adapter's base class: impl.py imports this module
    from dbt.adapters.postgres.connections import PostgresCredentials
    from dbt.adapters.postgres.impl import PostgresAdapter


def credentials_conninfo(credentials: PostgresCredentials, application_name: str = "dbt arc-halo migrations") -> str:
    """A libpq connection string for the profile target's database (psycopg 3, beside dbt's psycopg2)."""
    return connection_string(host=credentials.host, port=credentials.port, user=credentials.user, password=credentials.password,
                 dbname=credentials.database, sslmode=credentials.sslmode, connect_timeout=credentials.connect_timeout,
                 application_name=application_name)


def apply_migrations(adapter: PostgresAdapter) -> str:
    """migrations/ of the project, applied to the target's database (its schema first on the path)."""
    import psycopg

    from arc_halo.conninfo import check_libpq_transport

    credentials = adapter.config.credentials
    conninfo = credentials_conninfo(credentials)
    try:
        check_libpq_transport(conninfo, f"profile target {adapter.config.target_name!r}")
        with psycopg.connect(conninfo) as conn:
            outcome = migrations.migrate(conn, migrations.folder(Path(adapter.config.project_root)), credentials.schema)
    except ArcHaloError as exc:
        raise DbtRuntimeError(str(exc)) from None
    return outcome.summary()


def apply_online_ddl(adapter: PostgresAdapter, steps: list[dict[str, str]]) -> int:
    """Run the steps on this thread's connection, in autocommit after committing what dbt has open."""
    connection = adapter.connections.get_thread_connection()
    if connection.transaction_open:
        adapter.connections.commit()  # type: ignore[no-untyped-call]  # dbt-adapters leaves it unannotated
    connection.handle.commit()  # psycopg2 opens a transaction by itself on any statement dbt ran untracked
    try:
        return online_ddl.apply(connection.handle, steps)
    except ArcHaloError as exc:
        raise DbtRuntimeError(str(exc)) from None
