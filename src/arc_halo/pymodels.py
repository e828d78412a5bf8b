"""Runs the project's Python models between dbt's phases (dbt-postgres cannot run `.py` models).

`arc-halo build` = dbt build of everything upstream of the Python models -> each Python model in
dependency order -> dbt build of the Python models (their tests) and everything downstream.
Inputs and outputs come from dbt's manifest: relation names of the node's refs and its contract.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from graphlib import TopologicalSorter
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

from arc_halo import config

TAG = "python_model"


@dataclass(frozen=True)
class PythonModel:
    name: str
    schema: str
    identifier: str
    columns: list[tuple[str, str]]  # (name, data_type) in contract order
    inputs: dict[str, str]  # input node name -> "schema"."table"
    depends_on: list[str]  # unique ids


def load_models(manifest_path: Path | None = None) -> list[PythonModel]:
    """Python models from target/manifest.json, in dependency order."""
    manifest = json.loads((manifest_path or config.project_dir() / "target" / "manifest.json").read_text())
    nodes = manifest["nodes"]
    found = {
        unique_id: node for unique_id, node in nodes.items()
        if node["resource_type"] == "model" and node["config"].get("materialized") == TAG
    }
    order = TopologicalSorter({uid: [d for d in node["depends_on"]["nodes"] if d in found] for uid, node in found.items()})
    models = []
    for unique_id in order.static_order():
        node = found[unique_id]
        # schema.table without the database: the manifest may come from a build of another database
        inputs = {
            nodes[d]["name"]: sql.Identifier(nodes[d]["schema"], nodes[d]["alias"] or nodes[d]["name"]).as_string()
            for d in node["depends_on"]["nodes"] if d in nodes
        }
        columns = [(name, column["data_type"]) for name, column in node["columns"].items()]
        models.append(PythonModel(node["name"], node["schema"], node["alias"] or node["name"], columns, inputs,
                                  node["depends_on"]["nodes"]))
    return models


def _read(conn: psycopg.Connection, query: str) -> dict[str, np.ndarray]:
    cursor = conn.execute(query)  # relation names come from dbt's manifest, quoted by load_models
    names = [column.name for column in cursor.description]
    rows = cursor.fetchall()
    return {name: np.array([row[i] for row in rows], dtype=object) for i, name in enumerate(names)}


def _write(conn: psycopg.Connection, model: PythonModel, output: dict) -> int:
    """Replace the output's rows in one transaction: readers see the old rows or the new, never a mix.
    The table is derived data; if its columns no longer match the contract it is re-created."""
    names = [name for name, _ in model.columns]
    if list(output) != names:
        raise ValueError(f"Python model {model.name} returned columns {list(output)}, contract says {names}")
    lengths = {len(values) for values in output.values()}
    if len(lengths) > 1:
        raise ValueError(f"Python model {model.name} returned columns of different lengths {sorted(lengths)}")
    table = sql.Identifier(model.schema, model.identifier)
    with conn.transaction():
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(model.schema)))
        existing = [row[0] for row in conn.execute(
            "select attname from pg_attribute where attrelid = to_regclass(%s) and attnum > 0 and not attisdropped"
            " order by attnum", (f'"{model.schema}"."{model.identifier}"',))]
        if existing and existing != names:
            conn.execute(sql.SQL("drop table {} cascade").format(table))  # views are rebuilt by dbt's next phase
        columns = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in model.columns)
        conn.execute(sql.SQL("create table if not exists {} ({})").format(table, columns))
        conn.execute(sql.SQL("delete from {}").format(table))
        count = lengths.pop() if lengths else 0
        with conn.cursor().copy(sql.SQL("copy {} ({}) from stdin").format(
            table, sql.SQL(", ").join(map(sql.Identifier, names)))) as copy:
            for index in range(count):
                copy.write_row([_plain(output[name][index]) for name in names])
    return count


def _plain(value):
    """numpy scalars to Python values for COPY; NaN stays NaN, None stays NULL."""
    return value.item() if isinstance(value, np.generic) else value


def run(conn: psycopg.Connection, models: list[PythonModel] | None = None) -> dict[str, int]:
    """Compute every Python model in order; returns rows written per model."""
    written = {}
    for model in models if models is not None else load_models():
        module = importlib.import_module(f"arc_halo.python_models.{model.name}")
        queries = getattr(module, "INPUT_QUERIES", {})  # a module may narrow what it reads of an input
        inputs = {
            name: _read(conn, queries.get(name, "select * from {relation}").format(relation=relation))
            for name, relation in model.inputs.items()
        }
        written[model.name] = _write(conn, model, module.compute(inputs))
    return written
