"""Issue 10 §3: one exception tree, and every user error of the CLI is one line with exit code 2."""

from __future__ import annotations

import subprocess

import numpy as np
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from arc_halo import db, errors, hf, inference, tensors, training
from cli_runner import arc_halo as arc
from test_cli_malformed_inputs import model_directory



def assert_one_line_user_error(result: subprocess.CompletedProcess, *expected: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("arc-halo: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in lines[0]
    return lines[0]


def test_every_kind_is_an_arc_halo_error() -> None:
    for kind in (errors.ConfigurationError, errors.DatabaseUnavailableError, errors.InvalidInputError,
                 errors.NotFoundError, errors.IntegrityError):
        assert issubclass(kind, errors.ArcHaloError) and kind.__doc__
    # callers written against the standard exceptions keep working
    assert issubclass(errors.InvalidInputError, ValueError)
    assert issubclass(errors.NotFoundError, LookupError)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("no-such-command",), "invalid choice: 'no-such-command'"),
        (("cache", "purge", "--batch-size", "0"), "0 must be at least 1"),
        (("cache", "purge", "--batch-size", "many"), "'many' is not a whole number"),
        (("partitions", "create", "--months-ahead", "-3"), "-3 must be 0 or more"),
        (("model", "list", "--surprise"), "unrecognized arguments: --surprise"),
        (("model", "export"), "the following arguments are required: model, output"),
    ],
)
def test_argument_errors_are_one_line(args, expected) -> None:
    assert_one_line_user_error(arc(*args), expected)


def test_a_missing_database_is_named_and_the_host_is_not_blamed(built_database: str) -> None:
    url = make_conninfo(built_database, dbname="arc_halo_no_such_database")
    line = assert_one_line_user_error(arc("model", "list", ARC_HALO_DATABASE_URL=url))
    assert "database 'arc_halo_no_such_database' does not exist" in line and "answered" in line
    assert "cannot reach" not in line


def test_an_unreachable_host_is_named_and_the_database_is_not_blamed() -> None:
    with pytest.raises(errors.DatabaseUnavailableError, match=r"cannot reach database host 127.0.0.1 \(port 9\)") as caught:
        db.connect("postgresql://u@127.0.0.1:9/arc_halo", attempts=1)
    assert "does not exist" not in str(caught.value)


def test_traceback_only_when_asked(built_database: str) -> None:
    url = make_conninfo(built_database, dbname="arc_halo_no_such_database")
    quiet = arc("model", "list", ARC_HALO_DATABASE_URL=url)
    assert "Traceback" not in quiet.stderr
    for loud in (arc("--debug", "model", "list", ARC_HALO_DATABASE_URL=url),
                 arc("model", "list", ARC_HALO_DATABASE_URL=url, ARC_HALO_DEBUG="1")):
        assert loud.returncode != 0 and "Traceback" in loud.stderr and "DatabaseUnavailableError" in loud.stderr


# Issue 18 §6: answers that were "internal error", exit 1, or no answer at all.

def test_an_unknown_target_is_refused_even_where_a_url_decides(built_database: str) -> None:
    line = assert_one_line_user_error(arc("model", "list", ARC_HALO_TARGET="bogus", ARC_HALO_DATABASE_URL=built_database))
    assert "ARC_HALO_TARGET='bogus' is unknown: use one of local, neon, ci" in line


@pytest.mark.parametrize("command", [("model", "list"), ("sample", "load"), ("model", "import")])
def test_a_database_without_the_schema_says_to_build_first(test_server, fresh_database: str, tmp_path,
                                                           command) -> None:
    args = [*command, str(model_directory(tmp_path))] if command == ("model", "import") else list(command)
    line = assert_one_line_user_error(arc(*args, ARC_HALO_DATABASE_URL=test_server.url(fresh_database)))
    assert "has no Arc-Halo schema" in line and "build it first with `arc-halo build`" in line


def test_a_database_without_pgvector_says_to_build_first(test_server) -> None:
    name = test_server.create_database()
    try:
        with psycopg.connect(test_server.url(name), autocommit=True) as conn:
            conn.execute("drop extension vector")
        line = assert_one_line_user_error(arc("model", "list", ARC_HALO_DATABASE_URL=test_server.url(name)))
        assert "(vector type not found in the database): build it first" in line
        with pytest.raises(errors.ConfigurationError, match="no Arc-Halo schema"):
            db.connect(test_server.url(name), attempts=1)
    finally:
        test_server.drop_database(name)


@pytest.mark.parametrize("command", [("model", "import"), ("sample", "load")])
def test_the_app_role_without_a_tenant_is_told_how_to_act_as_one(test_server, rls_copy: str, app_login: str,
                                                                tmp_path, command) -> None:
    url = make_conninfo(test_server.url(rls_copy), user=app_login)
    args = [*command, str(model_directory(tmp_path))] if command == ("model", "import") else list(command)
    line = assert_one_line_user_error(arc(*args, ARC_HALO_DATABASE_URL=url))
    assert "row-level security refused" in line and "PGOPTIONS='-c app.tenant_id=<tenant>'" in line
    with psycopg.connect(url) as conn:
        conn.execute("select set_config('app.tenant_id', 'A', false)")
        assert conn.execute("select count(*) from models").fetchone()[0] == 0  # nothing was written
    # and what it says works
    done = arc(*args, ARC_HALO_DATABASE_URL=url, PGOPTIONS="-c app.tenant_id=A")
    assert done.returncode == 0, done.stderr


def test_a_missing_privilege_names_the_login_and_the_grant(test_server, built_database: str) -> None:
    login = "arc_halo_no_grants_tester"
    with psycopg.connect(test_server.admin_url, autocommit=True) as conn:
        conn.execute(f"do $$ begin if not exists (select from pg_roles where rolname = '{login}') then "
                     f"create role {login} login; end if; end $$")
    url = make_conninfo(built_database, user=login)
    line = assert_one_line_user_error(arc("model", "list", ARC_HALO_DATABASE_URL=url))
    assert "permission denied for" in line and "grant arc_halo_app to" in line
    with psycopg.connect(url) as conn, pytest.raises(errors.ConfigurationError, match=f"login '{login}' lacks a privilege"):
        hf.export_model(conn, "any", "/tmp/never.safetensors")


def test_python_calls_answer_malformed_ids_and_unknown_values_with_what_to_do(db_conn_ids) -> None:
    conn, ids = db_conn_ids
    with pytest.raises(errors.InvalidInputError, match="tensor id 'not-a-uuid' is not a UUID"):
        tensors.get(conn, "not-a-uuid")
    with pytest.raises(errors.IntegrityError, match=r"refused by constraint training_sessions_status_check on "
                                                    r"training_sessions: .*see the table's rules with `\\d\+ training_sessions`"):
        training.finish_session(conn, ids["session"], "bogus")
    conn.rollback()
    unknown = "5b3f1f0e-0000-4000-8000-00000000a1b2"
    with pytest.raises(errors.NotFoundError, match=f"no models row with .*{unknown}.* for this tenant"):
        inference.start_session(conn, unknown)
    conn.rollback()
    with pytest.raises(errors.NotFoundError, match=f"no inference session {unknown}"):
        inference.finish_session(conn, unknown, 3)
    with pytest.raises(errors.InvalidInputError, match="needs a psycopg connection first"):
        tensors.get("not a connection", ids["tensor"])
    with pytest.raises(errors.InvalidInputError, match="the database refused a value: .*NUL"):
        training.start_session(conn, ids["model"], "nul\x00name")
    with pytest.raises(errors.InvalidInputError, match="hyperparameters must be a dict"):
        training.start_session(conn, ids["model"], "run", hyperparameters=["not", "a", "dict"])


@pytest.fixture
def db_conn_ids(built_database: str):
    from rows import insert_everything

    with psycopg.connect(built_database) as conn:
        ids = insert_everything(conn, suffix="-errors")
        ids["tensor"] = tensors.put(conn, np.zeros(3, np.float32), "t")
        yield conn, ids
        conn.rollback()
