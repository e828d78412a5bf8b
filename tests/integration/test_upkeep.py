"""The scheduled upkeep: run_upkeep() (what pg_cron and the scheduled workflow call) removes expired
cache rows and creates metric partitions ahead, every run is recorded (a failed one with its error) and
shows in analytics.upkeep_status; the pg_cron registration schedules exactly that call where pg_cron
exists and does nothing elsewhere."""

from __future__ import annotations


import psycopg
import pytest

from arc_halo import lifecycle
from arc_halo.errors import InvalidInputError
from rows import insert_everything
from cli_runner import arc_halo



def add_cache_rows(conn: psycopg.Connection, ids: dict, expired: int, live: int) -> None:
    for position in range(expired + live):
        offset = "-1 hour" if position < expired else "+1 hour"
        conn.execute(
            f"""insert into activation_cache (inference_session_id, layer_id, activation_name, position_start,
                   position_end, dtype, shape, activation_data, size_bytes, expires_at)
               values (%s, %s, 'x', %s, %s, 'float32', '{{1}}', '\\x00000000', 4, now() + interval '{offset}')""",
            (ids["inference"], ids["layer"], 1000 + position, 1001 + position))
        conn.execute(
            f"""insert into kv_cache (inference_session_id, layer_id, head_index, position_start, position_end,
                   dtype, shape, key_data, value_data, size_bytes, expires_at)
               values (%s, %s, 0, %s, %s, 'float32', '{{1}}', '\\x00', '\\x00', 2, now() + interval '{offset}')""",
            (ids["inference"], ids["layer"], 1000 + position, 1001 + position))


def status(conn: psycopg.Connection) -> dict:
    cursor = conn.execute("select * from analytics.upkeep_status")
    return dict(zip([c.name for c in cursor.description], cursor.fetchone(), strict=True))


def test_a_run_removes_expired_rows_creates_partitions_and_is_recorded(test_server, built_copy) -> None:
    with psycopg.connect(test_server.url(built_copy), autocommit=True) as conn:
        before = status(conn)
        assert before["last_run_at"] is None and before["is_overdue"] is True
        ids = insert_everything(conn)
        add_cache_rows(conn, ids, expired=5, live=2)
        run = lifecycle.run_upkeep(conn, "workflow", batch_size=2, max_batches=2, months_ahead=14)
        # Two batches of two per table: one expired row of each is left for the next run, and said so.
        assert (run.status, run.kv_cache_rows_removed, run.activation_cache_rows_removed, run.expired_rows_remaining) \
            == ("succeeded", 4, 4, True)
        assert run.error is None and len(run.partitions_created) >= 1
        assert all(conn.execute("select to_regclass(%s) is not null", (name,)).fetchone()[0]
                   for name in run.partitions_created)
        after_first = status(conn)
        assert (after_first["last_run_status"], after_first["last_run_rows_removed"], after_first["has_expired_backlog"],
                after_first["is_overdue"], after_first["last_run_triggered_by"]) == ("succeeded", 8, True, False, "workflow")
        second = lifecycle.run_upkeep(conn, months_ahead=14)
        assert (second.kv_cache_rows_removed, second.activation_cache_rows_removed, second.expired_rows_remaining,
                second.partitions_created) == (1, 1, False, [])
        assert conn.execute("select count(*) from kv_cache where expires_at <= now()").fetchone()[0] == 0
        assert conn.execute("select count(*) from kv_cache where position_start >= 1000").fetchone()[0] == 2  # the live ones
        assert conn.execute("select count(*) from upkeep_runs").fetchone()[0] == 2
        assert status(conn)["rows_removed_last_24h"] == 10


def test_a_failed_run_is_recorded_with_its_error_and_removes_nothing(test_server, built_copy) -> None:
    url = test_server.url(built_copy)
    with psycopg.connect(url, autocommit=True) as conn, psycopg.connect(url) as holder:
        ids = insert_everything(conn)
        add_cache_rows(conn, ids, expired=3, live=0)
        holder.execute("lock table kv_cache in access exclusive mode")  # e.g. a migration holding the table
        try:
            run_id = conn.execute("select run_upkeep('manual', lock_wait => interval '50 milliseconds')").fetchone()[0]
            row = conn.execute("select status, error, kv_cache_rows_removed + activation_cache_rows_removed"
                               " from upkeep_runs where upkeep_run_id = %s", (run_id,)).fetchone()
            # The scheduled workflow's command reports it too, in one line, with a failing exit code.
            cli = arc_halo("upkeep", "run", "--triggered-by", "workflow", url=url)
        finally:
            holder.rollback()
        assert row[0] == "failed" and "lock timeout" in row[1] and row[2] == 0
        assert conn.execute("select count(*) from activation_cache where expires_at <= now()").fetchone()[0] == 3
        view = status(conn)
        assert view["last_run_status"] == "failed" and "lock timeout" in view["last_run_error"]
        assert view["failed_runs_last_24h"] == 2
        assert cli.returncode == 1 and "failed (recorded in upkeep_runs)" in cli.stderr
        assert len(cli.stderr.strip().splitlines()) == 1 and "Traceback" not in cli.stderr
        cli = arc_halo("upkeep", "run", url=url)
        assert cli.returncode == 0 and "removed 3 kv_cache and 3 activation_cache rows" in cli.stdout, cli.stderr


def test_registration_does_nothing_without_pg_cron(db) -> None:
    answer = db.execute("select register_upkeep_schedule()").fetchone()[0]
    assert answer.startswith("not scheduled: no pg_cron here")


def test_registration_schedules_the_upkeep_call_where_pg_cron_exists(test_server, built_copy) -> None:
    """pg_cron is not in the embedded server: a stand-in cron.schedule_in_database with pg_cron's
    signature records what the registration asks for, then the recorded command is run as pg_cron would."""
    with psycopg.connect(test_server.url(built_copy), autocommit=True) as conn:
        conn.execute("""create schema cron;
            create table cron.scheduled (job_name text, schedule text, command text, database text);
            create function cron.schedule_in_database(job_name text, schedule text, command text, database text,
                                                      username text default null, active boolean default true)
            returns bigint language sql as $$
                insert into cron.scheduled values (job_name, schedule, command, database); select 1::bigint $$""")
        answer = conn.execute("select register_upkeep_schedule('*/15 * * * *')").fetchone()[0]
        job = conn.execute("select job_name, schedule, command, database from cron.scheduled").fetchall()
        assert job == [(f"arc_halo_upkeep:{built_copy}", "*/15 * * * *", "select public.run_upkeep('pg_cron')", built_copy)]
        assert answer.startswith(f"scheduled arc_halo_upkeep:{built_copy}")
        conn.execute(job[0][2])
        assert status(conn)["last_run_triggered_by"] == "pg_cron"
        assert status(conn)["last_run_status"] == "succeeded"


def test_bad_upkeep_arguments_are_refused_in_one_line(db) -> None:
    with pytest.raises(InvalidInputError, match="triggered_by"):
        lifecycle.run_upkeep(db, "cron-ish")
    with pytest.raises(InvalidInputError, match="batch_size"):
        lifecycle.run_upkeep(db, batch_size=0)
