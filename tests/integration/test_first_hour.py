"""What a new user meets in the first hour: psql through arc-halo runs what it is given."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ARC = str(Path(sys.executable).parent / "arc-halo")


def test_db_psql_runs_the_command_after_a_double_dash() -> None:
    result = subprocess.run([ARC, "db", "psql", "--", "-At", "-c", "select 40 + 2"], capture_output=True, text=True,
                            timeout=120, env={**os.environ})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


def test_the_example_queries_say_when_columns_are_left_out(test_server, built_copy, monkeypatch, capsys) -> None:
    import psycopg

    from arc_halo import cli, sample

    url = test_server.url(built_copy)
    with psycopg.connect(url) as conn:
        sample.load(conn)
        conn.commit()
    monkeypatch.setenv("ARC_HALO_DATABASE_URL", url)
    cli._print_examples()
    printed = capsys.readouterr().out
    architecture = printed.split("SELECT * FROM v_model_architecture")[1].split("\nSELECT")[0]
    with psycopg.connect(url) as conn:
        width = len(conn.execute("select * from v_model_architecture limit 0").description)
    assert f"(7 of {width} columns shown" in architecture
