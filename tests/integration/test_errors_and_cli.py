"""Issue 10 §3: one exception tree, and every user error of the CLI is one line with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo

from arc_halo import db, errors

ARC = str(Path(sys.executable).parent / "arc-halo")


def arc(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "ARC_HALO_DEBUG"}
    environment.update(env)
    return subprocess.run([ARC, *args], env=environment, capture_output=True, text=True, timeout=120)


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
