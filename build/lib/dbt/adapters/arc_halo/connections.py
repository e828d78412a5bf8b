"""Connections are dbt-postgres's (psycopg2, the same profile fields); only the type name differs."""

from dataclasses import dataclass

from dbt.adapters.postgres.connections import PostgresConnectionManager, PostgresCredentials


@dataclass
class ArcHaloCredentials(PostgresCredentials):
    @property
    def type(self) -> str:
        return "arc_halo"


class ArcHaloConnectionManager(PostgresConnectionManager):
    TYPE = "arc_halo"
