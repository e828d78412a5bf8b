"""Connections for the library, to the database `targets.database_url()` picks (ARC_HALO_DATABASE_URL,
else NEON_DATABASE_URL, else the embedded server).

Remote hosts must use TLS (sslmode=require or stronger, `conninfo.check_libpq_transport`), checked by
`check_transport` before every connection the library opens, whatever URL or keywords it was given (pools,
ParallelUpload's workers and MetricLogger's reconnects all open `TenantConnection`s); connects are
retried with backoff (`connecting.with_connect_retries`), because a Neon compute that scaled to zero takes
a few seconds to wake.

Acting as a tenant (`arc_halo.tenancy`): the tenant is set for each transaction only, never for the session, so it cannot outlive a transaction or reach the next borrower of a pooled or
PgBouncer server connection. `connect(tenant=...)` and `pool(tenant=...)` give connections whose every
transaction acts as that tenant; `with tenant(conn, "acme"):` runs one transaction as a tenant on any
connection (e.g. a pool serving many tenants). Pools reset every connection they take back.

Behind a transaction-mode pooler (a Neon `-pooler` host, or ARC_HALO_POOLED=1 e.g. for PgBouncer) the
next transaction may run on another server connection: psycopg's automatic prepared statements are
off, and a connection without a tenant sets an empty one per transaction, so it sees nothing whatever
an earlier client left on the server connection. Such a connection cannot be autocommit: nothing would
set the tenant for a statement outside a transaction block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Self

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from arc_halo import connecting, targets, tenancy, validation
from arc_halo.conninfo import check_libpq_transport, connection_string, is_pooled, parsed_conninfo
from arc_halo.errors import InvalidInputError, describe_connection_failure, from_database, public_call
from arc_halo.rows import one_value

if TYPE_CHECKING:
    from psycopg.abc import PQGen, QueryNoTemplate
    from psycopg.pq.abc import PGresult
    from psycopg_pool import ConnectionPool

CONNECT_ATTEMPTS = 4
MAX_POOL_SIZE = 10_000


def _check_tenant(tenant: str | None) -> None:
    if tenant is not None and (not isinstance(tenant, str) or not tenant or "\x00" in tenant):
        raise InvalidInputError(f"tenant must be a non-empty string, got {tenant!r}")


class TenantConnection(psycopg.Connection[tuple[Any, ...]]):
    """A psycopg connection whose every transaction starts by acting as `tenant`.

    psycopg starts each transaction with one BEGIN command (the implicit one before the first statement
    and the one `transaction()` sends); the tenant is set right after it, inside the same transaction.
    Behind a pooler (`pooled`) a connection without a tenant sets an empty one the same way, so it sees
    nothing whatever an earlier client left on the shared server connection (e.g. a session-level SET).
    """

    _tenant: str | None = None
    _pinned: str | None = None  # the tenant each transaction sets (tenancy.SETTING); None: nothing

    _resetting = False  # reset_connection's DISCARD ALL needs autocommit for a moment

    @classmethod
    def connect(cls, conninfo: str = "", *, tenant: str | None = None, pooled: bool = False,  # type: ignore[override]
                **kwargs: Any) -> Self:
        _check_tenant(tenant)
        check_transport(conninfo, kwargs)
        if kwargs.get("autocommit"):
            _refuse_autocommit(tenant, pooled)
        if pooled:
            kwargs["prepare_threshold"] = None  # the next transaction may run on another server connection
        conn = super().connect(conninfo, **kwargs)
        conn._tenant = tenant
        conn._pinned = tenant if tenant is not None else ("" if pooled else None)
        return conn

    def set_autocommit(self, value: bool) -> None:
        if value and self._pinned is not None and not self._resetting:
            _refuse_autocommit(self._tenant, self._pinned == "" or self.prepare_threshold is None)
        super().set_autocommit(value)

    @property
    def tenant(self) -> str | None:
        return self._tenant

    def _exec_command(self, command: QueryNoTemplate, *args: Any, **kwargs: Any) -> PQGen[PGresult | None]:
        result = yield from super()._exec_command(command, *args, **kwargs)
        if self._pinned is not None and command == self._get_tx_start_command():
            yield from super()._exec_command(_set_tenant(self._pinned))
        return result


def _set_tenant(name: str) -> sql.Composed:
    return sql.SQL(tenancy.SET_TENANT).format(sql.Literal(name))


@public_call
def tenant_of(conn: psycopg.Connection[Any]) -> str | None:
    """The tenant `conn` acts as: the one a `connect(tenant=...)` connection sets in every transaction;
    else, inside an open transaction, the one set there (`with tenant(conn, ...)`); else None. The one
    way the library asks a connection for its tenant."""
    if isinstance(conn, TenantConnection) and conn.tenant is not None:
        return conn.tenant
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.INTRANS:
        return None
    tenant_name: str | None = one_value(conn.execute(f"select nullif(current_setting('{tenancy.SETTING}', true), '')"))
    return tenant_name


def _refuse_autocommit(tenant: str | None, pooled: bool) -> None:
    """Outside a transaction block each statement is its own transaction, and no BEGIN comes to set the
    tenant: on a tenant connection it would run as nobody, behind a pooler with whatever tenant another
    client left on the server connection."""
    if tenant is not None:
        raise InvalidInputError("a tenant connection cannot be autocommit: each transaction sets the tenant")
    if pooled:
        raise InvalidInputError("a connection through a transaction-mode pooler cannot be autocommit: a statement "
                                "outside a transaction would run with whatever tenant another client left on the "
                                "server connection; leave autocommit off (each `with conn.transaction():` commits)")


# psycopg's own connect options, not libpq's
_PSYCOPG_OPTIONS = ("autocommit", "prepare_threshold", "context", "row_factory", "cursor_factory")


def check_transport(conninfo: str, kwargs: dict[str, Any] | None = None, source: str = "connection string") -> None:
    """The TLS rule (`conninfo.check_libpq_transport`) on what a connect call would give libpq: the string
    with the keyword arguments over it. Every connection the library opens passes here first."""
    if not isinstance(conninfo, str):
        raise InvalidInputError(f"a connection string is text (a libpq URL or key=value pairs), got {conninfo!r}")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise InvalidInputError(f"connection options are a dict of libpq keywords, got {kwargs!r}")
    parsed_conninfo(conninfo, source)
    check_libpq_transport(conninfo, source)
    params = {key: value for key, value in (kwargs or {}).items()
              if key not in _PSYCOPG_OPTIONS and value is not None}
    if params:
        check_libpq_transport({**conninfo_to_dict(conninfo), **params}, source)


def _target(url: object) -> str:
    """The database to connect to: `url` (checked to be a connection string), else the configured one."""
    if url is None:
        return targets.database_url()
    target = validation.text("the database URL", url)
    parsed_conninfo(target, "the database URL")
    return target


def _connect_options(target: str, pooled: bool | None) -> dict[str, Any]:
    return {"connect_timeout": connecting.NEON_CONNECT_TIMEOUT_SECONDS,
            "pooled": is_pooled(target) if pooled is None else validation.boolean("pooled", pooled)}


def connect(url: str | None = None, autocommit: bool = False, attempts: int = CONNECT_ATTEMPTS, *,
            tenant: str | None = None, pooled: bool | None = None) -> TenantConnection:
    """A connection with the pgvector adapter registered; with `tenant`, every transaction acts as it.
    `pooled` (default: detected, see `is_pooled`) turns psycopg's prepared statements off. A connection
    that cannot be made raises DatabaseUnavailableError saying whether the host, the database or the
    login is wrong."""
    target = _target(url)
    check_transport(target, source="db.connect")
    if not isinstance(autocommit, bool):
        raise InvalidInputError(f"autocommit must be True or False, got {autocommit!r}")
    try:
        conn = connecting.with_connect_retries(
            lambda: TenantConnection.connect(target, autocommit=autocommit, tenant=tenant,
                                             **_connect_options(target, pooled)),
            attempts, 0.5, 8, permanent=connecting.PERMANENT_CONNECT_FAILURES)
    except psycopg.OperationalError as exc:
        raise describe_connection_failure(exc, target) from exc
    try:
        register_vector(conn)
    except psycopg.ProgrammingError as exc:  # no pgvector in this database: it was never built
        conn.close()
        translated = from_database(exc)
        if translated is None:
            raise
        raise translated from exc
    return conn


@contextlib.contextmanager
@public_call
def tenant(conn: psycopg.Connection[Any], name: str) -> Iterator[psycopg.Connection[Any]]:
    """One transaction acting as tenant `name`, committed at the end of the block (rolled back on error).

    It must start the transaction itself: a tenant set inside an already open transaction would last
    until that transaction ends, past this block.
    """
    if name is None:
        raise InvalidInputError("tenant() needs a tenant name")
    _check_tenant(name)
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise InvalidInputError("db.tenant() starts its own transaction: commit or roll back the open one first")
    with conn.transaction():
        conn.execute(_set_tenant(name))
        yield conn


@public_call
def conninfo_of(conn: psycopg.Connection[Any]) -> str:
    """`conn`'s connection string with its password (psycopg's `info.dsn` leaves it out), to open another
    connection like it."""
    password = conn.info.password
    return connection_string(conn.info.dsn, password=password)


@public_call
def reset_connection(conn: psycopg.Connection[Any]) -> None:
    """What a pool does to every connection it takes back: DISCARD ALL forgets session settings (a
    session-level tenant setting, `SET ROLE`), temporary tables, advisory locks and prepared
    statements, so nothing of one borrower reaches the next."""
    autocommit = conn.autocommit
    conn._resetting = True  # type: ignore[attr-defined]
    try:
        conn.autocommit = True  # DISCARD ALL cannot run inside a transaction block
        conn.execute("discard all")
    finally:
        conn.autocommit = autocommit
        conn._resetting = False  # type: ignore[attr-defined]


def pool(url: str | None = None, min_size: int = 1, max_size: int = 8, *, tenant: str | None = None,
         pooled: bool | None = None) -> ConnectionPool[TenantConnection]:
    """A psycopg_pool.ConnectionPool of `TenantConnection`s (pgvector registered; with `tenant`, every
    transaction acts as it), reset with DISCARD ALL whenever a connection comes back.
    Open it with `with pool() as p:`; `p.connection()` lends a connection."""
    from psycopg_pool import ConnectionPool

    _check_tenant(tenant)
    target = _target(url)
    check_transport(target, source="db.pool")  # here, not in the pool's thread, where it would only retry
    validation.whole_number("min_size", min_size, 0, MAX_POOL_SIZE)
    validation.whole_number("max_size", max_size, max(min_size, 1), MAX_POOL_SIZE)
    return ConnectionPool(
        target, min_size=min_size, max_size=max_size, open=False, connection_class=TenantConnection,
        kwargs={"tenant": tenant, **_connect_options(target, pooled)},
        configure=register_vector, reset=reset_connection, reconnect_timeout=60,
    )
