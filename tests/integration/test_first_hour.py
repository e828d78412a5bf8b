"""What a new user meets in the first hour: psql through arc-halo runs what it is given."""

from __future__ import annotations

import os
from cli_runner import arc_halo



def test_db_psql_runs_the_command_after_a_double_dash() -> None:
    result = arc_halo("db", "psql", "--", "-At", "-c", "select 40 + 2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


def test_the_example_queries_say_when_columns_are_left_out(test_server, built_copy, monkeypatch, capsys) -> None:
    import psycopg

    from arc_halo import sample
    from arc_halo.cli import build_commands

    url = test_server.url(built_copy)
    with psycopg.connect(url) as conn:
        sample.load(conn)
        conn.commit()
    monkeypatch.setenv("ARC_HALO_DATABASE_URL", url)
    build_commands.print_examples()
    printed = capsys.readouterr().out
    architecture = printed.split("SELECT * FROM v_model_architecture")[1].split("\nSELECT")[0]
    with psycopg.connect(url) as conn:
        width = len(conn.execute("select * from v_model_architecture limit 0").description)
    assert f"(7 of {width} columns shown" in architecture


def test_model_delete_removes_the_model_and_everything_that_is_its_and_nothing_else(test_server, built_copy) -> None:
    import psycopg

    from rows import insert_everything, insert_tensor

    url = test_server.url(built_copy)
    env = {**os.environ, "ARC_HALO_DATABASE_URL": url}
    with psycopg.connect(url) as conn:
        ids = insert_everything(conn)
        # Tensors are shared by content: the one both models use stays, the one only this model uses goes.
        own = insert_tensor(conn, shape=(3,))
        conn.execute("insert into model_weights (model_id, parameter_name, tensor_id) values (%s, 'own', %s)",
                     (ids["model"], own))
        conn.execute("insert into model_weights (model_id, parameter_name, tensor_id) values (%s, 'shared', %s)",
                     (ids["model2"], ids["tensor"]))
        conn.commit()
        tables = [row[0] for row in conn.execute(
            "select c.relname from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n"
            " on n.oid = c.relnamespace where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relispartition"
            " and a.attname = 'model_id' and not a.attisdropped")]
        other_before = {t: conn.execute(f"select count(*) from {t} where model_id = %s", (ids["model2"],)).fetchone()[0]
                        for t in tables}
        tensors_before = conn.execute("select count(*) from tensor_metadata").fetchone()[0]
        held = {t: conn.execute(f"select count(*) from {t} where model_id = %s", (ids["model"],)).fetchone()[0]
                for t in tables}
    assert held["models"] == 1 and held["transformer_layers"] >= 1 and held["training_sessions"] >= 1
    missing = arc_halo("model", "delete", "no-such-model", env=env)
    assert missing.returncode == 2 and "no model 'no-such-model'" in missing.stderr
    deleted = arc_halo("model", "delete", str(ids["model"]), env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted model 'everything'" in deleted.stdout
    with psycopg.connect(url) as conn:
        for table in tables:
            assert conn.execute(f"select count(*) from {table} where model_id = %s", (ids["model"],)).fetchone()[0] == 0, table
            assert conn.execute(f"select count(*) from {table} where model_id = %s",
                                (ids["model2"],)).fetchone()[0] == other_before[table], table
        assert conn.execute("select count(*) from training_metrics where training_session_id = %s",
                            (ids["session"],)).fetchone()[0] == 0
        tensors_after = conn.execute("select count(*) from tensor_metadata").fetchone()[0]
        kept = conn.execute("select tensor_id from tensor_metadata where tensor_id = any(%s)", ([own, ids["tensor"]],))
        assert [str(row[0]) for row in kept] == [str(ids["tensor"])]
        dangling = conn.execute("""select count(*) from model_weights w
                                   left join tensor_metadata t using (tensor_id) where t.tensor_id is null""").fetchone()[0]
    assert tensors_after == tensors_before - 1 and dangling == 0
    assert "1 tensors no other model uses" in deleted.stdout
