"""The semantic layer (models/semantic/): MetricFlow's `mf query` over the sample data, through the
profile's `metricflow` target (type: postgres; MetricFlow does not know the arc_halo adapter type),
gives the numbers plain SQL gives."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from arc_halo import config, dbt, environments, sample

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def semantic_project(test_server, template_database, tmp_path_factory):
    """A copy of the project parsed for the `metricflow` target, and a built database with the sample data."""
    from conftest import PROJECT_FILES

    name = test_server.create_database(template=template_database)
    try:
        url = test_server.url(name)
        with psycopg.connect(url) as conn:
            sample.load(conn)
            conn.commit()
        project = tmp_path_factory.mktemp("semantic")
        for item in PROJECT_FILES:
            source = config.project_dir() / item
            if source.is_dir():
                shutil.copytree(source, project / item)
            elif source.exists():
                shutil.copy(source, project / item)
        shutil.copy(config.project_dir() / "profiles.yml.example", project / "profiles.yml")
        env = {**os.environ, **environments.url_environment(url), "ARC_HALO_TARGET": "metricflow",
               "DBT_PROFILES_DIR": str(project)}
        parsed = dbt.run_dbt(["parse"], env=env, check=False, project=project, capture=True)
        assert parsed.returncode == 0, parsed.stdout[-3000:]
        yield project, env, url
    finally:
        test_server.drop_database(name)


def mf_query(semantic_project, metrics: str, group_by: str) -> dict[str, tuple[float, ...]]:
    project, env, _ = semantic_project
    out = project / f"{metrics.replace(',', '_')}.csv"
    result = subprocess.run([str(BIN / "mf"), "query", "--metrics", metrics, "--group-by", group_by, "--csv", str(out),
                             "--quiet"], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and out.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    with out.open() as handle:
        rows = list(csv.reader(handle))
    return {row[0]: tuple(float(value) for value in row[1:]) for row in rows[1:]}


def sql(semantic_project, query: str) -> dict[str, tuple[float, ...]]:
    with psycopg.connect(semantic_project[2]) as conn:
        return {str(row[0]): tuple(float(value) for value in row[1:]) for row in conn.execute(query)}


def assert_close(got: dict, expected: dict) -> None:
    assert expected and got.keys() == expected.keys()
    for key, values in expected.items():
        assert got[key] == pytest.approx(values, rel=1e-6), key


def test_training_loss_and_throughput_per_run(semantic_project) -> None:
    got = mf_query(semantic_project, "training_loss,training_throughput", "training_session")
    expected = sql(semantic_project, """
        select training_session_id, avg(value),
               (max(step) - min(step)) / extract(epoch from max(recorded_at) - min(recorded_at))
        from training_metrics where metric_name = 'loss' group by training_session_id""")
    assert_close(got, expected)


def test_inference_latency_and_cache_hit_rate_per_model(semantic_project) -> None:
    got = mf_query(semantic_project, "inference_latency_ms,cache_hit_rate", "model")
    expected = sql(semantic_project, """
        with caches as (
            select inference_session_id, hit_count from kv_cache
            union all select inference_session_id, hit_count from activation_cache
        ),
        per_model as (
            select s.model_id,
                   (select avg(m.value) from inference_metrics m join inference_sessions x using (inference_session_id)
                    where x.model_id = s.model_id and m.metric_name = 'latency_ms') as latency,
                   (select sum(c.hit_count)::float8 / (sum(c.hit_count) + count(*)) from caches c
                    join inference_sessions x using (inference_session_id) where x.model_id = s.model_id) as hit_rate
            from inference_sessions s group by s.model_id
        )
        select model_id, latency, hit_rate from per_model""")
    assert_close(got, expected)


def test_reactor_throughput_per_day(semantic_project) -> None:
    got = mf_query(semantic_project, "reactor_operations", "metric_time__day")
    expected = sql(semantic_project, """
        select to_char(date_trunc('day', started_at), 'YYYY-MM-DD'), count(*)
        from fusion_operations group by 1""")
    assert_close({key[:10]: value for key, value in got.items()}, expected)


def test_training_runs_that_stopped_reporting_are_named(db) -> None:
    from rows import insert_everything

    ids = insert_everything(db)  # a running session that just reported
    session = str(ids["session"])
    listed = "select training_session_id from analytics.training_runs_stopped_reporting"
    assert session not in {str(row[0]) for row in db.execute(listed)}
    db.execute("""update training_sessions set started_at = now() - interval '3 hours',
                  progress_updated_at = now() - interval '2 hours' where training_session_id = %s""", (ids["session"],))
    db.execute("delete from training_metrics_latest where training_session_id = %s", (ids["session"],))
    names = {str(row[0]): row[1] for row in db.execute(
        "select training_session_id, minutes_silent from analytics.training_runs_stopped_reporting")}
    assert session in names and names[session] >= 119
    db.execute("update training_sessions set status = 'failed', ended_at = now() where training_session_id = %s",
               (ids["session"],))
    assert session not in {str(row[0]) for row in db.execute(listed)}
