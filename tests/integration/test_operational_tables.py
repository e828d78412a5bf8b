"""Issue 3: every seed table exists with its declared keys, and no dbt command loses a row."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from conftest import build
from rows import TABLES, insert_everything, row_counts

SEED_TABLES = {
    "models", "transformer_layers", "attention_heads", "tensor_metadata", "tensor_data", "model_weights",
    "embeddings", "training_sessions", "training_metrics", "optimizer_state", "model_checkpoints",
    "gradient_checkpoints", "inference_sessions", "activation_cache", "kv_cache", "inference_metrics",
    "attention_patterns", "cognitive_fusion_reactors", "reactor_models", "fusion_operations",
    "model_interaction_graph", "cognitive_state", "reactor_metrics",
}


def test_all_seed_tables_exist(db: psycopg.Connection) -> None:
    found = {
        row[0]
        for row in db.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relispartition"
        )
    }
    assert len(SEED_TABLES) == 23
    assert SEED_TABLES <= found
    assert set(TABLES) <= found


def test_catalog_has_stable_constraint_and_index_names(db: psycopg.Connection) -> None:
    constraints = {row[0] for row in db.execute("select conname from pg_constraint where connamespace = 'public'::regnamespace")}
    for name in (
        "models_pkey", "models_tenant_name_key", "models_hidden_size_heads_check", "transformer_layers_model_id_fkey",
        "tensor_data_pkey", "tensor_metadata_dtype_fkey", "tensor_metadata_element_count_check",
        "embeddings_model_width_fkey", "reactor_models_weight_check", "model_interaction_graph_no_self_loop_check",
        "training_metrics_latest_pkey", "model_checkpoints_session_step_key",
    ):
        assert name in constraints, name
    indexes = {row[0] for row in db.execute("select indexname from pg_indexes where schemaname = 'public'")}
    for name in (
        "embeddings_hnsw_cosine_384", "activation_cache_expiry_idx", "kv_cache_expiry_idx", "kv_cache_entry_key",
        "model_checkpoints_one_best_per_session", "training_metrics_session_metric_brin",
        "fusion_operations_contributing_model_ids_idx",
    ):
        assert name in indexes, name
    hnsw = db.execute("select indexdef from pg_indexes where indexname = 'embeddings_hnsw_cosine_384'").fetchone()[0]
    assert "hnsw" in hnsw and "m='16'" in hnsw and "ef_construction='64'" in hnsw and "WHERE (dimensions = 384)" in hnsw


def test_defaults_and_storage(db: psycopg.Connection) -> None:
    defaults = dict(
        db.execute(
            "select column_name, column_default from information_schema.columns"
            " where table_schema = 'public' and table_name = 'models'"
        ).fetchall()
    )
    assert defaults["model_id"] == "gen_random_uuid()"
    assert defaults["status"] == "'draft'::text"
    storage = db.execute(
        "select attstorage from pg_attribute where attrelid = 'tensor_data'::regclass and attname = 'chunk_data'"
    ).fetchone()[0]
    assert storage == "e"  # external: out of line, uncompressed


def test_rows_survive_rebuild_and_full_refresh(test_server, built_copy: str) -> None:
    url = test_server.url(built_copy)
    with psycopg.connect(url) as conn:
        insert_everything(conn)
        conn.commit()
        before = row_counts(conn)
    assert all(count > 0 for count in before.values()), before
    build(test_server, built_copy, "--exclude", "resource_type:test")
    build(test_server, built_copy, "--full-refresh", "--exclude", "resource_type:test")
    with psycopg.connect(url) as conn:
        assert row_counts(conn) == before


def _edit(project: Path, relative: str, old: str, new: str) -> None:
    path = project / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new, 1))


CORE_YAML = "models/raw/core/_core__models.yml"
NEW_COLUMN = """      - name: description
        data_type: text
        description: Notes for people.
      - name: license
        data_type: text
        description: Licence of the weights.
        constraints:
          - type: not_null
          - type: custom
            expression: "default 'apache-2.0'"
          - type: check
            expression: "license in ('apache-2.0', 'mit', 'proprietary')"
"""


def test_added_column_gets_default_and_check(test_server, built_copy: str, project_copy: Path) -> None:
    url = test_server.url(built_copy)
    with psycopg.connect(url) as conn:
        insert_everything(conn)
        conn.commit()
        before = row_counts(conn)
    _edit(project_copy, CORE_YAML, "      - name: description\n        data_type: text\n        description: Notes for people.\n", NEW_COLUMN)
    build(test_server, built_copy, "--select", "models", project=project_copy, command="run")
    with psycopg.connect(url) as conn:
        assert row_counts(conn) == before
        assert {row[0] for row in conn.execute("select license from models")} == {"apache-2.0"}
        nullable = conn.execute(
            "select is_nullable from information_schema.columns where table_name = 'models' and column_name = 'license'"
        ).fetchone()[0]
        assert nullable == "NO"
        with pytest.raises(psycopg.errors.CheckViolation, match="models_license_check"):
            conn.execute("update models set license = 'wtfpl'")


def test_added_volatile_default_column_is_backfilled(test_server, built_copy: str, project_copy: Path) -> None:
    url = test_server.url(built_copy)
    with psycopg.connect(url) as conn:
        insert_everything(conn)
        conn.commit()
    _edit(project_copy, CORE_YAML, "      - name: description\n        data_type: text\n        description: Notes for people.\n",
          """      - name: description
        data_type: text
        description: Notes for people.
      - name: import_token
        data_type: uuid
        description: A volatile default, back-filled per row.
        constraints:
          - type: not_null
          - type: custom
            expression: "default gen_random_uuid()"
""")
    build(test_server, built_copy, "--select", "models", project=project_copy, command="run")
    with psycopg.connect(url) as conn:
        tokens = [row[0] for row in conn.execute("select import_token from models")]
        assert len(tokens) == 2 and None not in tokens and len(set(tokens)) == 2


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("      - name: model_type\n        data_type: text\n        description: Implementation type as Hugging Face configs name it (`gpt2`, `bert`, `llama`, ...), if known.\n",
         "", r"column model_type is in the table but no longer in the contract.*drop column model_type"),
        ("      - name: vocab_size\n        data_type: integer\n", "      - name: vocab_size\n        data_type: bigint\n",
         r"column vocab_size is integer in the table but bigint in the contract"),
    ],
    ids=["removed-column", "changed-type"],
)
def test_destructive_contract_change_is_refused(test_server, built_copy, project_copy, old, new, message) -> None:
    url = test_server.url(built_copy)
    with psycopg.connect(url) as conn:
        insert_everything(conn)
        conn.commit()
        before = row_counts(conn)
        columns_before = conn.execute(
            "select column_name, data_type from information_schema.columns where table_name = 'models' order by 1"
        ).fetchall()
    _edit(project_copy, CORE_YAML, old, new)
    result = build(test_server, built_copy, "--select", "models", project=project_copy, check=False, command="run")
    assert result.returncode != 0
    output = re.sub(r"\s+", " ", result.stdout)
    assert re.search(message, output), output[-3000:]
    assert "arc-halo db migrate" in output
    with psycopg.connect(url) as conn:
        assert row_counts(conn) == before
        assert conn.execute(
            "select column_name, data_type from information_schema.columns where table_name = 'models' order by 1"
        ).fetchall() == columns_before


def test_tightened_check_on_existing_rows_fails_clearly(test_server, built_copy, project_copy) -> None:
    url = test_server.url(built_copy)
    with psycopg.connect(url) as conn:
        insert_everything(conn)  # vocab_size = 16
        conn.commit()
    _edit(project_copy, CORE_YAML, 'expression: "vocab_size > 0"', 'expression: "vocab_size > 100"')
    result = build(test_server, built_copy, "--select", "models", project=project_copy, check=False, command="run")
    assert result.returncode != 0
    output = re.sub(r"\s+", " ", result.stdout)
    assert "cannot change constraint models_vocab_size_check" in output
    assert "Existing rows violate it" in output
    with psycopg.connect(url) as conn:
        definition = conn.execute(
            "select pg_get_constraintdef(oid) from pg_constraint where conname = 'models_vocab_size_check'"
        ).fetchone()[0]
        assert definition == "CHECK ((vocab_size > 0))"
