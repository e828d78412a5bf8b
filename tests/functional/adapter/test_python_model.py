"""dbt-tests-adapter's Python model suites against `type: arc_halo`.

As dbt-duckdb does (tests/functional/adapter/test_python_model.py), the upstream model bodies are
kept and only their Spark calls are rewritten: `df.limit(2)` and `df.filter(df.id > 5)` become a
query through `session.sql` over the ref's relation (the adapter's own frame) or a pandas expression.
The upstream tests themselves run unchanged, incremental under each strategy the adapter offers.
"""

import pytest
from dbt.tests.adapter.python_model.test_python_model import (
    BasePythonIncrementalTests,
    BasePythonModelTests,
    basic_sql,
    m_1,
    schema_yml,
    second_sql,
)

basic_python_template = """
def model(dbt, {session}):
    dbt.config(
        materialized='table',
    )
    df =  dbt.ref("my_sql_model")
    df2 = dbt.ref("my_versioned_sql_model", v=1)
    df3 = dbt.ref("my_versioned_sql_model", version=1)
    df4 = dbt.ref("test", "my_versioned_sql_model", v=1)
    df5 = dbt.ref("test", "my_versioned_sql_model", version=1)
    df6 = dbt.source("test_source", "test_table")
    df = {limit}
    return df
"""

FRAME_LIMIT = 'session.sql(f"select * from {df} limit 2")'
PANDAS_LIMIT = "df.to_pandas().head(2)"


class TestBasePythonModelFrame(BasePythonModelTests):
    @pytest.fixture(scope="class")
    def models(self):
        return {
            "schema.yml": schema_yml,
            "my_sql_model.sql": basic_sql,
            "my_versioned_sql_model_v1.sql": basic_sql,
            "my_python_model.py": basic_python_template.format(session="session", limit=FRAME_LIMIT),
            "second_sql_model.sql": second_sql,
        }


class TestBasePythonModelPandas(BasePythonModelTests):
    @pytest.fixture(scope="class")
    def models(self):
        return {
            "schema.yml": schema_yml,
            "my_sql_model.sql": basic_sql,
            "my_versioned_sql_model_v1.sql": basic_sql,
            "my_python_model.py": basic_python_template.format(session="_", limit=PANDAS_LIMIT),
            "second_sql_model.sql": second_sql,
        }


incremental_python_template = """
def model(dbt, session):
    dbt.config(materialized="incremental", unique_key='id')
    df = dbt.ref("m_1")
    if dbt.is_incremental:
        # incremental runs should only apply to part of the data
        df = {filter}
    return df
"""

FRAME_FILTER = 'session.sql(f"select * from {df} where id > 5")'
PANDAS_FILTER = "df.to_pandas()[lambda frame: frame.id > 5]"


class TestBasePythonIncrementalMerge(BasePythonIncrementalTests):
    """Upstream's own case: `merge` (its project_config_update), the adapter's frame."""

    @pytest.fixture(scope="class")
    def models(self):
        return {"m_1.sql": m_1, "incremental.py": incremental_python_template.format(filter=FRAME_FILTER)}


class TestBasePythonIncrementalDeleteInsert(BasePythonIncrementalTests):
    @pytest.fixture(scope="class")
    def project_config_update(self):
        return {"models": {"+incremental_strategy": "delete+insert"}}

    @pytest.fixture(scope="class")
    def models(self):
        return {"m_1.sql": m_1, "incremental.py": incremental_python_template.format(filter=PANDAS_FILTER)}


class TestBasePythonIncrementalAppend(BasePythonIncrementalTests):
    @pytest.fixture(scope="class")
    def project_config_update(self):
        return {"models": {"+incremental_strategy": "append"}}

    @pytest.fixture(scope="class")
    def models(self):
        return {"m_1.sql": m_1, "incremental.py": incremental_python_template.format(filter=FRAME_FILTER)}
