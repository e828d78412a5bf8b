"""Connections for the library: ARC_HALO_DATABASE_URL, else NEON_DATABASE_URL, else the embedded server.

Remote hosts must use TLS (sslmode=require or stronger); connects are retried with backoff, because a
Neon compute that scaled to zero takes a few seconds to wake.
"""

from __future__ import annotations

import time

import psycopg
from pgvector.psycopg import register_vector

from arc_halo import config, embedded
from arc_halo.errors import describe_connection_failure

CONNECT_ATTEMPTS = 4


def database_url() -> str:
    remote = config.configured_database_url()
    if remote is not None:
        return remote.url
    server = embedded.ensure_running()
    database = config.local_database()
    embedded.ensure_database(server, database)
    return server.url(database)


# libpq's answers that no retry changes: a missing database or role, a refused login
_PERMANENT_CONNECT_FAILURES = ("does not exist", "authentication failed")


def connect(url: str | None = None, autocommit: bool = False, attempts: int = CONNECT_ATTEMPTS) -> psycopg.Connection:
    """A psycopg connection with the pgvector adapter registered. A connection that cannot be made raises
    DatabaseUnavailableError saying whether the host, the database or the login is wrong."""
    target = url or database_url()
    for attempt in range(attempts):
        try:
            conn = psycopg.connect(target, autocommit=autocommit, connect_timeout=config.NEON_CONNECT_TIMEOUT_SECONDS)
            break
        except psycopg.OperationalError as exc:
            if attempt == attempts - 1 or any(text in str(exc) for text in _PERMANENT_CONNECT_FAILURES):
                raise describe_connection_failure(exc, target) from exc
            time.sleep(min(0.5 * 2**attempt, 8))
    register_vector(conn)
    return conn


def pool(url: str | None = None, min_size: int = 1, max_size: int = 8):
    """A psycopg_pool.ConnectionPool for the library's users, each connection with the pgvector adapter.
    Open it with `with pool() as p:`; `p.connection()` lends a connection."""
    from psycopg_pool import ConnectionPool

    return ConnectionPool(
        url or database_url(), min_size=min_size, max_size=max_size, open=False,
        kwargs={"connect_timeout": config.NEON_CONNECT_TIMEOUT_SECONDS},
        configure=register_vector, reconnect_timeout=60,
    )
