"""dbt Labs' adapter test suite (dbt-tests-adapter) against the project's adapter, `type: arc_halo`.

The suites are dbt-postgres's own (its tests/functional/adapter/), run here on the embedded server the
way dbt-postgres runs them on a PostgreSQL container: one throwaway database, the three roles its grants
tests name in DBT_TEST_USER_1..3, and `dbt_profile_target` pointing dbt's test fixtures at them.
"""

from __future__ import annotations

import os
import uuid
from argparse import Namespace
from collections.abc import Iterator

import psycopg
import pytest
from dbt.flags import set_from_args
from psycopg import sql

from arc_halo import embedded

# dbt's profile rendering reads the global flags; dbt-postgres's tests/conftest.py sets them the same way.
set_from_args(Namespace(), None)

pytest_plugins = ["dbt.tests.fixtures.project"]

TEST_ROLES = ("dbt_test_user_1", "dbt_test_user_2", "dbt_test_user_3")


@pytest.fixture(scope="session")
def adapter_suite_database() -> Iterator[tuple[embedded.ServerInfo, str]]:
    """A database of its own on the embedded server, dropped afterwards; the grants tests' roles
    (cluster-wide, so kept and reused) exist and are named in the environment."""
    server = embedded.ensure_running()
    name = f"arc_halo_adapter_suite_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        for role in TEST_ROLES:
            conn.execute(sql.SQL("do $$ begin if not exists (select from pg_roles where rolname = {name}) then"
                                 " create role {role}; end if; end $$").format(
                name=sql.Literal(role), role=sql.Identifier(role)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    saved = {f"DBT_TEST_USER_{index}": os.environ.get(f"DBT_TEST_USER_{index}") for index in (1, 2, 3)}
    os.environ.update({f"DBT_TEST_USER_{index}": role for index, role in enumerate(TEST_ROLES, start=1)})
    try:
        yield server, name
    finally:
        for variable, value in saved.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value
        with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture(scope="class")
def dbt_profile_target(adapter_suite_database) -> dict:
    server, database = adapter_suite_database
    return {"type": "arc_halo", "host": str(server.socket_dir), "port": 5432, "user": "postgres", "pass": "",
            "dbname": database, "threads": 4}


def pytest_configure(config) -> None:
    # dbt-tests-adapter's base classes (and so the suites here) define class-scoped fixtures as methods.
    config.addinivalue_line("filterwarnings", "ignore:Class-scoped fixtures defined as instance methods")
