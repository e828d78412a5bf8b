"""Connections for the library: ARC_HALO_DATABASE_URL, else NEON_DATABASE_URL, else the embedded server.

Remote hosts must use TLS (sslmode=require or stronger); connects are retried with backoff, because a
Neon compute that scaled to zero takes a few seconds to wake.
"""

from __future__ import annotations

import time

import psycopg
from pgvector.psycopg import register_vector

from arc_halo import config, embedded

CONNECT_ATTEMPTS = 4


def database_url() -> str:
    remote = config.configured_database_url()
    if remote is not None:
        return remote.url
    server = embedded.ensure_running()
    database = config.local_database()
    embedded.ensure_database(server, database)
    return server.url(database)


def connect(url: str | None = None, autocommit: bool = False, attempts: int = CONNECT_ATTEMPTS) -> psycopg.Connection:
    """A psycopg connection with the pgvector adapter registered."""
    target = url or database_url()
    for attempt in range(attempts):
        try:
            conn = psycopg.connect(target, autocommit=autocommit, connect_timeout=config.NEON_CONNECT_TIMEOUT_SECONDS)
            break
        except psycopg.OperationalError:
            if attempt == attempts - 1:
                raise
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
