"""dbt conventions the project holds itself to: every model, column, seed and function described;
every operational table contracted, with a tested primary key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from arc_halo import config


@pytest.fixture(scope="module")
def manifest() -> dict:
    root = config.project_dir()
    subprocess.run([str(Path(sys.executable).parent / "arc-halo"), "dbt", "parse", "--quiet"], cwd=root, check=True)
    return json.loads((root / "target" / "manifest.json").read_text())


def test_every_model_column_seed_and_function_is_described(manifest) -> None:
    missing = []
    for node in [*manifest["nodes"].values(), *manifest.get("functions", {}).values()]:
        if node["resource_type"] not in ("model", "seed", "function"):
            continue
        if not node["description"].strip():
            missing.append(node["name"])
        missing += [f"{node['name']}.{name}" for name, column in node.get("columns", {}).items()
                    if not column["description"].strip()]
    assert missing == []


def test_operational_tables_are_contracted_with_a_tested_key(manifest) -> None:
    tests_by_model: dict[str, set[str]] = {}
    for node in manifest["nodes"].values():
        if node["resource_type"] == "test" and node.get("attached_node"):
            tests_by_model.setdefault(node["attached_node"], set()).add(node["test_metadata"]["name"]
                                                                          if node.get("test_metadata") else "")
    for unique_id, node in manifest["nodes"].items():
        if node["resource_type"] != "model" or node["config"]["materialized"] != "operational_table":
            continue
        assert node["config"]["contract"]["enforced"], node["name"]
        keys = [c for column in node["columns"].values() for c in column["constraints"] if c["type"] == "primary_key"]
        keys += [c for c in node["constraints"] if c["type"] == "primary_key"]
        if node["name"] == "training_metrics":
            continue  # append-only history, keyless by design (see its description)
        assert keys, f"{node['name']} has no primary key"
        assert tests_by_model.get(unique_id, set()) & {"unique", "unique_combination"}, f"{node['name']} key untested"


def test_the_public_analyst_models_are_contracted(manifest) -> None:
    """Every model analysts may build on (access public) has an enforced contract with a type for every
    column, so a renamed or retyped column fails the build instead of the analysts' queries."""
    public = [node for node in manifest["nodes"].values()
              if node["resource_type"] == "model" and node["config"].get("access", node.get("access")) == "public"]
    assert {"checkpoint_history", "training_health_overview", "replication_lag"} <= {node["name"] for node in public}
    for node in public:
        assert node["config"]["contract"]["enforced"], node["name"]
        assert node["columns"] and all(column["data_type"] for column in node["columns"].values()), node["name"]


def test_the_operational_table_materialization_ships_with_the_adapter(manifest) -> None:
    """dbt-duckdb's layout: the materialization in the adapter's include, declared for `arc_halo` (it calls
    adapter.apply_online_ddl, which only this adapter has), and none in the project's macros/."""
    materializations = sorted((macro["package_name"], macro["name"], macro["original_file_path"])
                              for macro in manifest["macros"].values()
                              if macro["name"].startswith("materialization_operational_table")
                              or (macro["name"].startswith("materialization_") and macro["package_name"] == "arc_halo"))
    assert materializations == [("dbt_arc_halo", "materialization_operational_table_arc_halo",
                                 "macros/materializations/operational_table/materialization.sql")]
