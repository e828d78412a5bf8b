"""Issue 22: incremental Python models through dbt on `type: arc_halo`, checked by stored values (not
counts): `merge` and `delete+insert` on `unique_key` and `append`, NULL and NaN kept apart, the YAML's
column types authoritative, a model without them typed from its frame (and the build log says so),
a failed incremental step changing nothing (it runs in the model's transaction), and a full refresh."""

import math

import pytest
from dbt.tests.util import run_dbt, run_dbt_and_capture

events_sql = """
{{ config(materialized='table') }}
{% if var('round', 1) == 1 %}
select 1 as id, 'a' as label, 1.5::float8 as score
union all select 2, 'b', null
{% elif var('round') == 2 %}
select 2 as id, 'b2' as label, 2.5::float8 as score
union all select 3, 'c', 'NaN'::float8
{% else %}
select 3 as id, 'twice' as label, 0::float8 as score
union all select 3, 'again', 1
{% endif %}
"""

model_py = """
def model(dbt, session):
    dbt.config(materialized="incremental", incremental_strategy="{strategy}", unique_key="id")
    return dbt.ref("events"){convert}
"""

schema_yml = """
version: 2
models:
  - name: merged
    description: declared types, which win over the frame's (integer, double precision)
    columns:
      - {name: id, data_type: bigint}
      - {name: label, data_type: text}
      - {name: score, data_type: real}
"""


def rows(project, relation: str) -> list[tuple]:
    return project.run_sql(f"select id, label, score from {project.test_schema}.{relation} order by id, label",
                           fetch="all")


def types(project, relation: str) -> list[tuple]:
    return project.run_sql(
        "select attname::text, format_type(atttypid, atttypmod) from pg_attribute"
        f" where attrelid = '{project.test_schema}.{relation}'::regclass and attnum > 0 order by attnum", fetch="all")


def same_rows(got: list[tuple], wanted: list[tuple]) -> bool:
    def same(a, b):
        if isinstance(b, float) and math.isnan(b):
            return isinstance(a, float) and math.isnan(a)
        return a == b

    return len(got) == len(wanted) and all(len(g) == len(w) and all(map(same, g, w)) for g, w in zip(got, wanted))


class TestIncrementalPythonModelsKeepValues:
    @pytest.fixture(scope="class")
    def models(self):
        return {
            "events.sql": events_sql,
            "schema.yml": schema_yml,
            "merged.py": model_py.format(strategy="merge", convert=""),
            "replaced.py": model_py.format(strategy="delete+insert", convert=".to_pandas()"),
            "appended.py": model_py.format(strategy="append", convert=".to_polars()"),
        }

    def test_strategies_types_and_a_failed_merge(self, project):
        _, log = run_dbt_and_capture(["run"])
        first = [(1, "a", 1.5), (2, "b", None)]
        for model in ("merged", "replaced", "appended"):
            assert same_rows(rows(project, model), first), model
        assert types(project, "merged") == [("id", "bigint"), ("label", "text"), ("score", "real")]
        assert types(project, "replaced") == [("id", "integer"), ("label", "text"), ("score", "double precision")]
        assert "Python model replaced: column types inferred from its DataFrame" in log
        assert "id integer, label text, score double precision" in log
        assert "Python model merged: column types inferred" not in log

        run_dbt(["run", "--vars", "{round: 2}"])
        nan = float("nan")
        updated = [(1, "a", 1.5), (2, "b2", 2.5), (3, "c", nan)]
        assert same_rows(rows(project, "merged"), updated)
        assert same_rows(rows(project, "replaced"), updated)
        assert same_rows(rows(project, "appended"), [(1, "a", 1.5), (2, "b", None), (2, "b2", 2.5), (3, "c", nan)])
        assert types(project, "merged") == [("id", "bigint"), ("label", "text"), ("score", "real")]

        # Two source rows for one key: MERGE refuses to change a row twice, and nothing of the step stays.
        results = run_dbt(["run", "--vars", "{round: 3}", "--select", "events", "merged"], expect_pass=False)
        assert {result.node.name: str(result.status) for result in results} == {"events": "success", "merged": "error"}
        assert same_rows(rows(project, "merged"), updated)
        leftover = project.run_sql(f"select to_regclass('{project.test_schema}.merged__dbt_tmp')::text", fetch="one")
        assert leftover == (None,)

        # --full-refresh rebuilds from the frame alone (no merge), still with the declared types.
        run_dbt(["run", "--vars", "{round: 3}", "--select", "merged", "--full-refresh"])
        assert same_rows(rows(project, "merged"), [(3, "again", 1.0), (3, "twice", 0.0)])
        assert types(project, "merged") == [("id", "bigint"), ("label", "text"), ("score", "real")]
