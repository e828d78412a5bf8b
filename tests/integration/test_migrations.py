"""Issue 13: migrations exist, follow the refusal's advice literally, and never lose or change a row."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from conftest import build
from rows import insert_everything, row_counts
from test_operational_tables import CORE_YAML, _edit

from arc_halo import config, environments, migrations, schema_export
from cli_runner import arc_halo as run_arc_halo

ADVICE = re.compile(r"create (migrations/\d+_[a-z0-9_]+\.sql) containing `([^`]+)` then run `arc-halo db migrate`")
MODEL_ROWS = "select model_id, model_name, hidden_size, {notes} from models order by model_id"


def arc_halo(project: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, pointed at the test database (the ci target) and the project copy."""
    return run_arc_halo(*args, **environments.url_environment(url), ARC_HALO_PROJECT_DIR=str(project))


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
        # the repository's own migrations were recorded without running when the database was built
        assert ledger[-2:] == [(widen, False), (rename, False)] and all(baseline for _, baseline in ledger[:-2])

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
    with_repository_migrations(tmp_path)  # which the file records as included
    (tmp_path / "20261201000000_models_license.sql").write_text("alter table models add column license text;\n")
    with psycopg.connect(url) as conn:
        outcome = migrations.migrate(conn, tmp_path)
        assert outcome.applied == ["20261201000000_models_license.sql"] and not outcome.baselined
        assert conn.execute("select count(*) from models where license is null").fetchone()[0] == 0
    recorded = schema_export._ledger_rows(url)
    assert "(20261201000000, '20261201000000_models_license.sql', '" in recorded and "', true)" in recorded


# Issue 18 §5: migrations say the truth.

TRANSACTION_CONTROL = [  # (a statement inside a transactional file, the words the refusal names)
    ("begin;", "BEGIN"), ("COMMIT;", "COMMIT"), ("Rollback;", "ROLLBACK"), ("start transaction;", "START TRANSACTION"),
    ("end;", "END"), ("savepoint before_drop;", "SAVEPOINT"), ("release savepoint s;", "RELEASE SAVEPOINT"),
    ("rollback to savepoint s;", "ROLLBACK"), ("abort;", "ABORT"), ("prepare transaction 'x';", "PREPARE TRANSACTION"),
    ("commit and chain;", "COMMIT"), ("/* a note */ commit", "COMMIT"), ("begin isolation level serializable;", "BEGIN"),
]
# Transaction words where they control nothing: bodies, strings, quoted names, comments, psql's rules.
NOT_TRANSACTION_CONTROL = """\
-- commit;
/* nested /* commit; */ still a comment; rollback; */
create table truth_a (x int, "end" text default 'begin; commit;');
insert into truth_a values (1, E'it\\'s; commit'), (2, $$ ; commit; $$), (3, $tag$ begin; end; $tag$);
create function truth_f() returns int language plpgsql as $fn$
begin
    perform 1;
    return (select case when true then 1 end);
end
$fn$;
create procedure truth_p() language plpgsql as 'begin commit; end';
create function truth_atomic() returns int language sql
begin atomic
    select case when true then 1 else 0 end;
end;
prepare truth_q as select 1;
deallocate truth_q;
select "commit" from (select 1 as "commit") as quoted;
"""


def with_repository_migrations(folder: Path) -> list[str]:
    """The repository's migrations copied into `folder` (a database built from this checkout records them
    as applied, and refuses a folder without them); their names."""
    folder.mkdir(exist_ok=True)
    names = []
    for path in sorted(migrations.folder(config.project_dir()).glob("*.sql")):
        shutil.copy(path, folder / path.name)
        names.append(path.name)
    return names


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def ledger(conn: psycopg.Connection) -> list[str]:
    return [row[0] for row in conn.execute("select file_name from arc_halo_meta.schema_migrations order by version")]


def refused(conn: psycopg.Connection, folder: Path) -> str:
    with pytest.raises(migrations.MigrationError) as caught:
        migrations.migrate(conn, folder)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_transaction_control_in_a_transactional_migration_is_refused_before_anything_runs(
    test_server, built_copy: str, tmp_path: Path,
) -> None:
    """A file with its own BEGIN ... COMMIT then a failing statement used to be reported as "nothing of it
    was applied" while the part before COMMIT stayed, unrecorded. Such files are refused before any
    pending file runs; the same words in bodies, strings, names and comments are not transaction control."""
    with psycopg.connect(test_server.url(built_copy)) as conn:
        with_repository_migrations(tmp_path)
        recorded = ledger(conn)
        conn.commit()  # the runner sets autocommit: it needs the connection idle
        write(tmp_path, "20261201000000_first.sql", "create table truth_first (x int);\n")
        for statement, words in TRANSACTION_CONTROL:
            bad = write(tmp_path, "20261201000001_own_transaction.sql",
                        f"create table truth_b (x int);\n-- why\n{statement}\ninsert into truth_b values (1/0);\n")
            message = refused(conn, tmp_path)
            assert message.startswith(f"migrations/{bad.name}, line 3: {words} controls the transaction"), message
            assert "`-- arc-halo: no-transaction`" in message and "remove it" in message
        assert conn.execute("select to_regclass('truth_first'), to_regclass('truth_b')").fetchone() == (None, None)
        assert ledger(conn) == recorded  # not even the good file before it ran

        bad.write_text(NOT_TRANSACTION_CONTROL)
        outcome = migrations.migrate(conn, tmp_path)
        assert outcome.applied == ["20261201000000_first.sql", bad.name]
        assert conn.execute("select truth_f(), truth_atomic(), count(*) from truth_a").fetchone() == (1, 1, 3)

        # The same transaction control in a no-transaction file runs, statement by statement.
        write(tmp_path, "20261201000002_own.sql", "-- arc-halo: no-transaction\nbegin;\ncreate table truth_c (x int);\ncommit;\n")
        assert migrations.migrate(conn, tmp_path).applied == ["20261201000002_own.sql"]
        assert conn.execute("select to_regclass('truth_c') is not null").fetchone()[0]


def test_a_failed_migration_says_nothing_was_applied_only_when_so(test_server, built_copy: str) -> None:
    url = test_server.url(built_copy)
    failing = migrations.Migration(20261201000000, "20261201000000_fails.sql",
                                   "create table truth_d (x int);\ninsert into truth_d values (1/0);\n")
    # Transaction control the check did not see (the runner called without it): the runner notices that
    # the file ended its transaction, and says the part before stays.
    committing = migrations.Migration(20261201000001, "20261201000001_commits.sql",
                                      "create table truth_e (x int);\ncommit;\ninsert into truth_e values (1/0);\n")
    with psycopg.connect(url, autocommit=True) as conn:
        migrations.ensure_ledger(conn)
        recorded = ledger(conn)
        with pytest.raises(migrations.MigrationError, match=r"division by zero \(nothing of it was applied\)"):
            migrations._apply_in_transaction(conn, failing, "public")
        assert conn.execute("select to_regclass('truth_d')").fetchone()[0] is None
        with pytest.raises(migrations.MigrationError) as caught:
            migrations._apply_in_transaction(conn, committing, "public")
        assert "nothing of it was applied" not in str(caught.value)
        assert "committed the statements before it, which stay applied, unrecorded" in str(caught.value)
        assert conn.execute("select to_regclass('truth_e') is not null").fetchone()[0]  # what the message says
        assert ledger(conn) == recorded
        # A file that commits and then succeeds is not recorded as applied either.
        with pytest.raises(migrations.MigrationError, match="ended the transaction it was run in"):
            migrations._apply_in_transaction(conn, migrations.Migration(
                20261201000002, "20261201000002_commits.sql", "create table truth_f (x int);\ncommit;\n"), "public")
        assert ledger(conn) == recorded


@pytest.mark.parametrize(("name", "message"), [
    ("20261201000000_upper.SQL", "ends in lowercase .sql (it would be skipped): rename it to 20261201000000_upper.sql"),
    ("20261201000000_mixed.Sql", "rename it to 20261201000000_mixed.sql"),
    ("١٢٣٤_arabic_digits.sql", "write the version '١٢٣٤' in ASCII digits 0-9 (it reads as 1234"),
    ("２０２６_fullwidth.sql", "in ASCII digits 0-9"),
    ("99999999999999999999_too_big.sql", "is larger than 9223372036854775807"),
])
def test_misnamed_files_are_refused_in_one_line(test_server, built_copy: str, tmp_path: Path, name: str, message: str) -> None:
    write(tmp_path, "20261130000000_fine.sql", "create table truth_fine (x int);\n")
    write(tmp_path, name, "create table truth_misnamed (x int);\n")
    with psycopg.connect(test_server.url(built_copy)) as conn:
        assert message in refused(conn, tmp_path)
        assert conn.execute("select to_regclass('truth_fine'), to_regclass('truth_misnamed')").fetchone() == (None, None)


def test_an_applied_migration_renamed_or_deleted_is_refused_by_name(
    test_server, built_copy: str, project_copy: Path,
) -> None:
    url = test_server.url(built_copy)
    folder = project_copy / "migrations"
    applied = write(folder, "20261201000000_add_notes.sql", "alter table models add column truth_notes text;\n")
    with psycopg.connect(url) as conn:
        assert migrations.migrate(conn, folder).applied == [applied.name]
        for new_name in ("20261201000000_add_model_notes.sql", "20261202000000_add_notes.sql"):
            renamed = applied.rename(folder / new_name)
            assert (f"migration {applied.name} is applied to this database but was renamed to migrations/{new_name}: "
                    "rename it back") in refused(conn, folder)
            renamed.rename(applied)
        applied.write_text(applied.read_text().replace("text", "varchar"))  # renamed and edited: still named
        applied.rename(folder / "20261201000000_add_model_notes.sql")
        assert (f"migration {applied.name} is applied to this database but migrations/{applied.name} is missing "
                "(migrations/20261201000000_add_model_notes.sql holds its version now): restore it") in refused(conn, folder)
        (folder / "20261201000000_add_model_notes.sql").unlink()
    deleted = arc_halo(project_copy, url, "db", "migrate")  # deleted: the CLI says so in one line, exit 2
    assert deleted.returncode == 2 and deleted.stderr.count("\n") == 1, deleted.stderr
    assert f"migration {applied.name} is applied to this database but migrations/{applied.name} is missing: restore it" \
        in deleted.stderr
