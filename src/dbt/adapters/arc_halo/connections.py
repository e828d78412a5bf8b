"""Connections are dbt-postgres's (psycopg2, the same profile fields); only the type name differs, and
every connection dbt opens first passes the project's TLS rule (arc_halo.conninfo.check_libpq_transport):
a remote host needs sslmode=require or stronger."""

from dataclasses import dataclass

from dbt.adapters.contracts.connection import Connection, ConnectionState
from dbt.adapters.exceptions.connection import FailedToConnectError
from dbt.adapters.postgres.connections import PostgresConnectionManager, PostgresCredentials

from arc_halo.conninfo import check_libpq_transport
from arc_halo.errors import ArcHaloError


@dataclass
class ArcHaloCredentials(PostgresCredentials):
    @property
    def type(self) -> str:
        return "arc_halo"


class ArcHaloConnectionManager(PostgresConnectionManager):
    TYPE = "arc_halo"

    @classmethod
    def open(cls, connection: Connection) -> Connection:
        if connection.state != "open":
            # dbt-postgres leaves get_credentials and open unannotated
            credentials = cls.get_credentials(connection.credentials)  # type: ignore[no-untyped-call]
            try:  # what psycopg2 will hand libpq; the PG* environment fills in the rest, as libpq does
                check_libpq_transport({"host": credentials.host, "sslmode": credentials.sslmode}, "dbt profile target")
            except ArcHaloError as exc:
                connection.state = ConnectionState.FAIL
                raise FailedToConnectError(str(exc)) from None
        opened: Connection = super().open(connection)  # type: ignore[no-untyped-call]
        return opened
