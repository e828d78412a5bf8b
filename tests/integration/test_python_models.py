"""Issue 12: the Python models are dbt Python models, built by plain `dbt build` through the project's
adapter (profile `type: arc_halo`): declared column types, grants and docs, DAG order with their tests
before their views, `--select model+`, an atomic replace, a broken input failing the build, `dbt retry`."""

from __future__ import annotations

import json
import threading

import numpy as np
import psycopg
import pytest
import yaml
from dbt_common.exceptions import DbtRuntimeError
from psycopg.conninfo import make_conninfo

from arc_halo import config, db, inference
from arc_halo.errors import InvalidInputError
from conftest import build, sample_copy_of
from dbt.adapters.arc_halo.model_output import output_columns
from rows import insert_everything
from dbt.adapters.arc_halo.python_model import rows_for

PYTHON_MODELS = ("attention_head_stats", "training_run_health")


def declared_types() -> dict[str, list[tuple[str, str]]]:
    document = yaml.safe_load((config.project_dir() / "models" / "python" / "_python__models.yml").read_text())
    return {model["name"]: [(c["name"], c["data_type"]) for c in model["columns"]] for model in document["models"]}


def run_results() -> dict[str, dict]:
    """The last dbt command's nodes by unique id: not its on-run-start/end hooks, nor the exposures downstream
    of the selection, which dbt lists among the results but builds nothing for."""
    results = json.loads((config.project_dir() / "target" / "run_results.json").read_text())["results"]
    return {result["unique_id"]: result for result in results
            if not result["unique_id"].startswith(("operation.", "exposure."))}


def manifest() -> dict:
    return json.loads((config.project_dir() / "target" / "manifest.json").read_text())


def attached_tests(nodes: dict, model: str) -> set[str]:
    """Data and unit tests of one model."""
    return {unique_id for unique_id, node in nodes.items()
            if node.get("attached_node") == f"model.arc_halo.{model}"
            or node["resource_type"] == "unit_test" and node.get("model") == model}


@pytest.fixture
def sample_copy(test_server, template_database):
    """A private built database with the sample data loaded (Python models not yet rebuilt)."""
    for name, _ in sample_copy_of(test_server, template_database):
        yield name


def test_plain_build_creates_the_declared_tables_with_grants_and_docs(built_database) -> None:
    """The template was built by plain `dbt build` on an empty database through the `ci` target."""
    with psycopg.connect(built_database) as conn:
        for model, columns in declared_types().items():
            relation = f"analytics.{model}"
            actual = conn.execute(
                "select attname, format_type(atttypid, atttypmod) from pg_attribute"
                " where attrelid = %s::regclass and attnum > 0 and not attisdropped order by attnum", (relation,),
            ).fetchall()
            assert actual == columns, model
            assert conn.execute(f"select count(*) from {relation}").fetchone()[0] == 0  # no data yet
            assert conn.execute("select has_table_privilege('arc_halo_analyst', %s, 'select')", (relation,)).fetchone()[0]
            assert conn.execute("select obj_description(%s::regclass)", (relation,)).fetchone()[0].startswith(
                f"Python model (models/python/{model}.py)")
            column_comment = conn.execute("select col_description(%s::regclass, 1)", (relation,)).fetchone()[0]
            assert column_comment and column_comment.startswith("The ")


def test_select_model_plus_builds_model_tests_then_view_only_and_readers_never_see_it_empty(
    test_server, sample_copy,
) -> None:
    url = test_server.url(sample_copy)
    build(test_server, sample_copy, "--select", "attention_head_stats+")
    with psycopg.connect(url) as conn:
        expected = conn.execute("select count(*) from analytics.attention_head_stats").fetchone()[0]
        expected_view = conn.execute("select count(*) from analytics.attention_head_profiles").fetchone()[0]
    assert expected > 0 and expected_view > 0

    seen: list[tuple[int, int]] = []
    errors: list[Exception] = []
    done = threading.Event()

    def read() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while not done.is_set():
                try:
                    seen.append((conn.execute("select count(*) from analytics.attention_head_stats").fetchone()[0],
                                 conn.execute("select count(*) from analytics.attention_head_profiles").fetchone()[0]))
                except psycopg.Error as exc:
                    errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        build(test_server, sample_copy, "--select", "attention_head_stats+")
    finally:
        done.set()
        reader.join()
    assert not errors
    assert seen and set(seen) == {(expected, expected_view)}  # old rows or new, never none or some

    nodes = manifest()["nodes"] | manifest()["unit_tests"]
    results = run_results()
    model, view = "model.arc_halo.attention_head_stats", "model.arc_halo.attention_head_profiles"
    model_tests, view_tests = attached_tests(nodes, "attention_head_stats"), attached_tests(nodes, "attention_head_profiles")
    assert model_tests and view_tests
    assert set(results) == {model, view} | model_tests | view_tests
    assert all(result["status"] in ("success", "pass") for result in results.values())

    def finished(unique_id: str) -> str:
        return results[unique_id]["timing"][-1]["completed_at"]

    def started(unique_id: str) -> str:
        return results[unique_id]["timing"][0]["started_at"]

    data_tests = {t for t in model_tests if t.startswith("test.")}
    assert all(finished(model) <= started(test) for test in data_tests)  # the model's tests after it
    assert all(finished(test) <= started(view) for test in data_tests)  # its views after its tests


def test_broken_input_fails_the_build_and_skips_downstream_and_retry_reruns_them(test_server, sample_copy) -> None:
    """Attention rows that are not distributions are refused when written (issue 18 §1, see the next
    test); rows from before those checks existed are what can still break the input. The build then
    stops at attention_patterns, whose checks it adds and validates, and skips what depends on it."""
    with psycopg.connect(test_server.url(sample_copy)) as conn:
        layer_id, session_id = conn.execute(
            "select layer_id, inference_session_id from attention_patterns limit 1").fetchone()
        conn.execute("alter table attention_patterns drop constraint attention_patterns_weights_sum_to_one_check")
        conn.execute(  # rows that sum to 0.5 and 1.5: not attention distributions
            """insert into attention_patterns (inference_session_id, layer_id, head_index, query_start, query_end,
                   key_start, key_end, weights) values (%s, %s, 40, 0, 2, 0, 2, '{0.25,0.25,0.75,0.75}')""",
            (session_id, layer_id))
    failed = build(test_server, sample_copy, check=False)
    assert failed.returncode == 1
    assert "attention_patterns_weights_sum_to_one_check" in failed.stdout
    results = run_results()
    assert results["model.arc_halo.attention_patterns"]["status"] == "error"
    assert results["model.arc_halo.attention_head_stats"]["status"] == "skipped"
    assert results["model.arc_halo.attention_head_profiles"]["status"] == "skipped"  # nothing downstream built
    assert results["model.arc_halo.training_health_overview"]["status"] == "success"  # other branches still build
    unfinished = {unique_id for unique_id, result in results.items() if result["status"] in ("fail", "error", "skipped")}

    retried = build(test_server, sample_copy, command="retry", check=False)
    assert retried.returncode == 1  # the input is still broken
    assert set(run_results()) == unfinished  # retry reruns exactly what failed or was skipped


NOT_DISTRIBUTIONS = [  # (weights, what record_attention says, the check a raw INSERT meets)
    (np.array([[0.25, 0.25], [0.75, 0.75]]), "query row 0 sum to 0.5, not 1", "weights_sum_to_one"),
    (np.full((2, 64), 1 / 64) * [[1.0], [1.0004]], "query row 1 have entropy 1.000", "weights_within_max_entropy"),
    (np.array([[1.5, -0.5]]), r"weight \[0, 0\] is 1.5: every weight must be a probability", "weights_are_probabilities"),
    (np.array([[np.nan, 1.0]]), r"weight \[0, 0\] is nan", "weights_are_probabilities"),
    (np.array([[np.inf, 0.0]]), r"weight \[0, 0\] is inf", "weights_are_probabilities"),
    (np.array([[0.0, 0.0]]), "sum to 0, not 1", "weights_sum_to_one"),
]


def test_one_tenants_invalid_attention_rows_are_refused_when_written_and_the_build_passes(
    test_server, rls_copy, app_login,
) -> None:
    """Issue 18 §1: tenant B's attention rows that are not distributions used to reach attention_head_stats
    and fail its data tests, the build, for every tenant. Now the library refuses them (InvalidInputError)
    and so does the table, to a raw INSERT as the application role (a check named for what is wrong)."""
    app = make_conninfo(test_server.url(rls_copy), user=app_login)
    ids = {}
    for tenant in ("A", "B"):
        with db.connect(app, tenant=tenant) as conn:
            ids[tenant] = insert_everything(conn, suffix=f"-{tenant}")
            inference.record_attention(conn, ids[tenant]["inference"], ids[tenant]["layer"], 1,
                                       np.full((3, 5), 0.2, dtype=np.float32), query_start=2)
    with db.connect(app, tenant="B") as conn:
        session, layer = ids["B"]["inference"], ids["B"]["layer"]
        near_uniform = np.full((1, 4096), 1 / 4096) * (1 + 2e-6)  # sums to 1.000002: its entropy exceeds log(keys)
        for weights, message, _ in [*NOT_DISTRIBUTIONS, (near_uniform, "above the maximum 1", None)]:
            with pytest.raises(InvalidInputError, match=message):
                inference.record_attention(conn, session, layer, 2, weights)
        for weights, _, check in NOT_DISTRIBUTIONS:
            with pytest.raises(psycopg.errors.CheckViolation, match=f"attention_patterns_{check}_check"), conn.transaction():
                conn.execute(
                    """insert into attention_patterns (inference_session_id, layer_id, head_index, query_start,
                           query_end, key_start, key_end, weights) values (%s, %s, 2, 0, %s, 0, %s, %s)""",
                    (session, layer, *weights.shape, weights.astype(np.float32).ravel().tolist()))
        with pytest.raises(psycopg.errors.CheckViolation, match="attention_patterns_weights_are_probabilities_check"):
            conn.execute("""insert into attention_patterns (inference_session_id, layer_id, head_index, query_start,
                                query_end, key_start, key_end, weights) values (%s, %s, 2, 0, 1, 0, 2, '{0.5, null}')""",
                         (session, layer))
    with db.connect(test_server.url(rls_copy)) as owner:
        assert owner.execute("select tenant_id, count(*) from attention_patterns group by 1 order by 1").fetchall() == [
            ("A", 2), ("B", 2)]

    build(test_server, rls_copy, "--vars", "{row_level_security: true}", "--select", "attention_patterns",
          "attention_head_stats")  # the models and the data tests on them
    assert all(result["status"] in ("success", "pass") for result in run_results().values())
    with db.connect(test_server.url(rls_copy)) as owner:
        heads = owner.execute("select inference_session_id, head_index, max_row_sum_error from analytics.attention_head_stats"
                              " order by 1, 2").fetchall()
    assert sorted((session, head) for session, head, _ in heads) == sorted(
        (ids[tenant]["inference"], head) for tenant in ("A", "B") for head in (0, 1))
    assert max(error for _, _, error in heads) < 1e-6


def test_a_model_must_return_exactly_its_declared_columns() -> None:
    declared = ["a", "b"]
    assert rows_for(output_columns({"b": [1, 2], "a": ["x", "y"]}), declared, "m") == [("x", 1), ("y", 2)]
    with pytest.raises(DbtRuntimeError, match=r"missing \['b'\], undeclared \['c'\]"):
        rows_for(output_columns({"a": [1], "c": [2]}), declared, "m")
    with pytest.raises(DbtRuntimeError, match="different lengths"):
        rows_for(output_columns({"a": [1], "b": [1, 2]}), declared, "m")


def test_state_modified_selects_an_edited_python_model_and_what_depends_on_it(test_server, project_copy) -> None:
    """Slim CI: a changed `.py` model is `state:modified` against the last run's manifest, like a SQL model;
    an untouched one is not. (`dbt parse` and `dbt ls` only parse: nothing connects.)"""
    state = project_copy / "state"
    build(test_server, "postgres", "--target-path", str(state), project=project_copy, command="parse")
    model_file = project_copy / "models" / "python" / "training_run_health.py"
    model_file.write_text(model_file.read_text() + "\n# edited\n")

    def selected(selector: str) -> set[str]:
        listed = build(test_server, "postgres", "--select", selector, "--state", str(state), "--resource-type",
                       "model", "--output", "name", "--quiet", project=project_copy, command="ls")
        return set(listed.stdout.split())

    assert selected("state:modified") == {"training_run_health"}
    downstream = selected("state:modified+")
    assert "training_run_health" in downstream and "attention_head_stats" not in downstream
    assert len(downstream) > 1  # the views built on it come along


def test_the_tables_attention_bounds_are_the_librarys_and_tighter_than_the_data_tests() -> None:
    """One set of numbers: attention_patterns' checks refuse what inference.attention_weights refuses, and
    both stay inside the data tests of attention_head_stats."""
    folder = config.project_dir() / "models"
    table = next(model for model in yaml.safe_load((folder / "raw" / "inference" / "_inference__models.yml").read_text())["models"]
                 if model["name"] == "attention_patterns")
    checks = {constraint["name"]: constraint["expression"] for constraint in table["constraints"] if constraint["type"] == "check"}
    assert checks["attention_patterns_weights_sum_to_one_check"].endswith(f"<= {inference.ROW_SUM_TOLERANCE}")
    entropy_bound = float(checks["attention_patterns_weights_within_max_entropy_check"].rsplit("<=", 1)[1])
    assert entropy_bound == 1 + inference.ENTROPY_SLACK
    stats_tests = str(yaml.safe_load((folder / "python" / "_python__models.yml").read_text())["models"][0]["data_tests"])
    assert "max_row_sum_error < 0.01" in stats_tests and "normalized_entropy between 0 and 1.000001" in stats_tests
    assert inference.ROW_SUM_TOLERANCE < 0.01 and 1 + inference.ENTROPY_SLACK < 1.000001
