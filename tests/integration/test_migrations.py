"""Issue 13: migrations exist, follow the refusal's advice literally, and never lose or change a row."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg

from conftest import build
from rows import insert_everything, row_counts
from test_operational_tables import CORE_YAML, _edit

from arc_halo import migrations, schema_export, targets

ADVICE = re.compile(r"create (migrations/\d+_[a-z0-9_]+\.sql) containing `([^`]+)` then run `arc-halo db migrate`")
MODEL_ROWS = "select model_id, model_name, hidden_size, {notes} from models order by model_id"


def arc_halo(project: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, pointed at the test database and the project copy."""
    env = {**os.environ, **targets.url_environment(url), "ARC_HALO_PROJECT_DIR": str(project)}
    arc = Path(sys.executable).parent / "arc-halo"
    return subprocess.run([str(arc), *args], env=env, capture_output=True, text=True, check=False)


def follow_refusal(test_server, database: str, project: Path, apply_by_building: bool = False) -> str:
    """Run the models build, expect the refusal, write the migration it names and apply it as it says:
    with the command it names, or by building again; returns the migration's file name."""
    result = build(test_server, database, "--select", "models", project=project, check=False, command="run")
    assert result.returncode != 0
    output = re.sub(r"\s+", " ", result.stdout)
    advice = ADVICE.search(output)
    assert advice, output[-3000:]
    path = project / advice[1]
    path.parent.mkdir(exist_ok=True)
    path.write_text(advice[2] + "\n")
    # The lint gate accepts the migration the advice wrote (squawk's bans silenced with a reason).
    squawk = subprocess.run([str(Path(sys.executable).parent / "squawk"), "--config", ".squawk.toml", advice[1]],
                            cwd=project, capture_output=True, text=True, check=False)
    assert squawk.returncode == 0, squawk.stdout + squawk.stderr
    if apply_by_building:  # plain dbt build applies it on-run-start, then evolves the models
        build(test_server, database, "--select", "models", "v_model_architecture", project=project)
        return path.name
    migrate = arc_halo(project, test_server.url(database), "db", "migrate")
    assert migrate.returncode == 0, migrate.stderr
    assert f"applied 1 migration(s): {path.name}" in migrate.stdout
    return path.name


def test_worked_example_widen_and_rename(test_server, built_copy: str, project_copy: Path) -> None:
    url = test_server.url(built_copy)
    with psycopg.connect(url) as conn:
        insert_everything(conn)
        conn.execute("update models set description = 'note ' || model_name")
        conn.commit()
        before = row_counts(conn)
        models_before = conn.execute(MODEL_ROWS.format(notes="description")).fetchall()

    # 1. models.hidden_size integer -> bigint: the refusal names the view to drop and the cast.
    _edit(project_copy, CORE_YAML, "      - name: hidden_size\n        data_type: integer\n",
          "      - name: hidden_size\n        data_type: bigint\n")
    widen = follow_refusal(test_server, built_copy, project_copy)
    assert "v_model_architecture" in (project_copy / "migrations" / widen).read_text()

    # 2. models.description renamed to notes: the refusal recognises the rename; the build applies it.
    _edit(project_copy, CORE_YAML, "      - name: description\n        data_type: text\n        description: Notes for people.\n",
          "      - name: notes\n        data_type: text\n        description: Notes for people.\n")
    rename = follow_refusal(test_server, built_copy, project_copy, apply_by_building=True)
    assert "rename column description to notes" in (project_copy / "migrations" / rename).read_text()

    # That build passed: the view the first migration dropped is built again, with its tests.
    with psycopg.connect(url) as conn:
        assert row_counts(conn) == before
        assert conn.execute(MODEL_ROWS.format(notes="notes")).fetchall() == models_before
        assert conn.execute(
            "select data_type from information_schema.columns where table_name = 'models' and column_name = 'hidden_size'"
        ).fetchone()[0] == "bigint"
        assert conn.execute("select count(*) from v_model_architecture").fetchone()[0] > 0
        ledger = conn.execute("select file_name, baseline from arc_halo_meta.schema_migrations order by version").fetchall()
        assert ledger == [(widen, False), (rename, False)]

    # Applying twice is a no-op; an applied migration edited afterwards is refused by name.
    again = arc_halo(project_copy, url, "db", "migrate")
    assert (again.returncode, again.stdout.strip()) == (0, "no pending migrations")
    edited = project_copy / "migrations" / widen
    edited.write_text(edited.read_text().replace("bigint", "numeric"))
    refused = arc_halo(project_copy, url, "db", "migrate")
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert f"migration {widen} was changed after it was applied" in refused.stderr


def test_lint_gate_fails_on_a_blocking_index_build(project_copy: Path) -> None:
    """squawk in the lint gate: a plain CREATE INDEX in a new migration fails it, with a GitHub annotation
    in Actions; the CONCURRENTLY form outside a transaction passes."""
    folder = project_copy / "migrations"
    folder.mkdir(exist_ok=True)
    blocking = folder / "20261201000000_index_models_status.sql"
    blocking.write_text("create index models_status_idx on models (status);\n")
    env = {**os.environ, "ARC_HALO_PROJECT_DIR": str(project_copy), "GITHUB_ACTIONS": "true"}
    arc = str(Path(sys.executable).parent / "arc-halo")
    failed = subprocess.run([arc, "lint", str(blocking)], env=env, capture_output=True, text=True, check=False)
    assert failed.returncode != 0
    assert ("::error file=migrations/20261201000000_index_models_status.sql,line=1,col=1,"
            "title=squawk require-concurrent-index-creation::") in failed.stdout
    blocking.write_text("-- arc-halo: no-transaction\ncreate index concurrently if not exists models_status_idx on models (status);\n")
    passed = subprocess.run([arc, "lint", str(blocking)], env=env, capture_output=True, text=True, check=False)
    assert (passed.returncode, passed.stdout.strip()) == (0, ""), passed.stdout


def test_psql_path_database_is_upgraded_by_migrations(test_server, fresh_database: str, tmp_path: Path) -> None:
    """A database created from db/schema/00_master_schema.sql takes later migrations; the file records
    the ones its schema already includes, so they are not run again."""
    from test_master_schema import psql_file

    url = test_server.url(fresh_database)
    created = psql_file(url)
    assert created.returncode == 0, created.stderr
    (tmp_path / "20261201000000_models_license.sql").write_text("alter table models add column license text;\n")
    with psycopg.connect(url) as conn:
        outcome = migrations.migrate(conn, tmp_path)
        assert outcome.applied == ["20261201000000_models_license.sql"] and not outcome.baselined
        assert conn.execute("select count(*) from models where license is null").fetchone()[0] == 0
    recorded = schema_export._ledger_rows(url)
    assert "(20261201000000, '20261201000000_models_license.sql', '" in recorded and "', true)" in recorded
