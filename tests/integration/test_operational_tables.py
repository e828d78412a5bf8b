"""Issue 3: every seed table exists with its declared keys, and no dbt command loses a row."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from conftest import build
from rows import TABLES, insert_everything, row_counts, table_contents

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
        "activation_cache_expiry_idx", "kv_cache_expiry_idx", "kv_cache_entry_key",
        "model_checkpoints_one_best_per_session", "training_metrics_session_metric_brin",
        "fusion_operations_contributing_model_ids_idx",
    ):
        assert name in indexes, name
    # Approximate indexes belong to each model's partition (chosen from its width, built after its load):
    # none on the partitioned table, whose one definition would have to fit every width.
    assert db.execute("select count(*) from pg_indexes where tablename = 'embeddings' and indexdef like '%%hnsw%%'"
                      ).fetchone()[0] == 0


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
        assert all(count > 0 for count in row_counts(conn).values())
        before = table_contents(conn)  # every row's values, not only how many there are
    build(test_server, built_copy, "--exclude", "resource_type:test")
    build(test_server, built_copy, "--full-refresh", "--exclude", "resource_type:test")
    with psycopg.connect(url) as conn:
        after = table_contents(conn)
    assert {table for table in before if before[table] != after.get(table)} == set()


# What a database built before issue 11 had: no tenant_id below the five tenant tables, single-column
# foreign keys, keys without tenant_id, no (tenant_id, id) keys on parents, and the old width key.
PRE_TENANT_CHILDREN = (
    "transformer_layers", "attention_heads", "tensor_data", "model_weights", "embeddings", "training_metrics",
    "metric_batches", "training_metrics_latest", "model_checkpoints", "optimizer_state", "gradient_checkpoints",
    "activation_cache", "kv_cache", "inference_metrics", "attention_patterns", "reactor_models", "fusion_operations",
    "model_interaction_graph", "cognitive_state", "reactor_metrics",
)
PRE_TENANT_PARENT_KEYS = {
    "models": "models_tenant_model_id_key", "tensor_metadata": "tensor_metadata_tenant_tensor_id_key",
    "training_sessions": "training_sessions_tenant_training_session_id_key",
    "inference_sessions": "inference_sessions_tenant_inference_session_id_key",
    "cognitive_fusion_reactors": "cognitive_fusion_reactors_tenant_reactor_id_key",
}
PRE_TENANT_CONSTRAINTS = """
alter table models drop constraint models_tenant_model_width_key cascade;
alter table models add constraint models_model_width_key unique (model_id, hidden_size);
alter table training_sessions drop constraint training_sessions_model_session_name_key,
    add constraint training_sessions_model_session_name_key unique (model_id, session_name);
alter table training_sessions drop constraint if exists training_sessions_model_id_fkey,
    add constraint training_sessions_model_id_fkey foreign key (model_id) references models (model_id);
alter table transformer_layers add constraint transformer_layers_model_id_fkey
    foreign key (model_id) references models (model_id) on delete cascade;
alter table transformer_layers add constraint transformer_layers_model_layer_index_key unique (model_id, layer_index);
alter table tensor_data add constraint tensor_data_pkey primary key (tensor_id, chunk_index);
alter table model_weights add constraint model_weights_layer_id_fkey
    foreign key (layer_id) references transformer_layers (layer_id) on delete set null;
alter table embeddings add constraint embeddings_model_width_fkey
    foreign key (model_id, dimensions) references models (model_id, hidden_size) on delete cascade;
alter table training_metrics_latest add constraint training_metrics_latest_pkey primary key (training_session_id, metric_name);
create unique index kv_cache_entry_key on kv_cache (inference_session_id, layer_id, coalesce(head_index, -1), position_start);
"""


def schema_catalog(conn: psycopg.Connection) -> set[tuple[str, str]]:
    """Every constraint and index of the public schema, by name and definition."""
    constraints = conn.execute(
        "select conname, pg_get_constraintdef(oid) from pg_constraint where connamespace = 'public'::regnamespace"
        " and conparentid = 0").fetchall()
    indexes = conn.execute("select indexname, indexdef from pg_indexes where schemaname = 'public'").fetchall()
    # A model's embeddings partition (embeddings_p<random hex>) exists where that model has rows: data, not schema.
    return {item for item in set(constraints) | set(indexes) if not re.match(r"embeddings_p[0-9a-f]{16}", item[0])}


def test_database_from_before_tenant_keys_converges_without_losing_a_row(test_server, built_copy, template_database) -> None:
    """A database whose child tables have no tenant_id is built into the tenant-scoped schema: every row
    is kept and takes its parent's tenant, and the keys end up exactly as in a fresh build."""
    url = test_server.url(built_copy)
    with psycopg.connect(url) as conn:
        for table, key in PRE_TENANT_PARENT_KEYS.items():
            conn.execute(f"alter table {table} drop constraint {key} cascade")
        for table in PRE_TENANT_CHILDREN:
            conn.execute(f"alter table {table} drop column tenant_id cascade")
        conn.execute(PRE_TENANT_CONSTRAINTS)
        conn.execute("alter table training_metrics disable trigger training_metrics_after_insert")  # reads tenant_id
        ids = {}
        for tenant in ("A", "B"):
            conn.execute("select set_config('app.tenant_id', %s, true)", (tenant,))
            ids[tenant] = insert_everything(conn, suffix=f"-{tenant}")
            conn.commit()
        conn.execute("alter table training_metrics enable trigger training_metrics_after_insert")
        conn.commit()
        before = row_counts(conn)
    build(test_server, built_copy, "--exclude", "resource_type:test")
    with psycopg.connect(url) as conn:
        assert row_counts(conn) == before
        for tenant in ("A", "B"):
            for table in PRE_TENANT_CHILDREN:
                if table != "training_metrics_latest":  # written by the trigger, disabled above
                    assert conn.execute(f"select count(*) from {table} where tenant_id = %s", (tenant,)).fetchone()[0] > 0, table
        assert conn.execute("select tenant_id from attention_heads join transformer_layers using (layer_id, tenant_id)"
                            " where model_id = %s limit 1", (ids["B"]["model"],)).fetchone() == ("B",)
        migrated = schema_catalog(conn)
    with psycopg.connect(test_server.url(test_server.create_database(template=template_database))) as fresh:
        expected = schema_catalog(fresh)
        name = fresh.info.dbname
    test_server.drop_database(name)
    assert migrated == expected, (sorted(migrated - expected), sorted(expected - migrated))


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
        # A key widened by a column is replaced (it holds for any rows); a narrowed one might not.
        ("        name: models_tenant_name_key\n        columns: [tenant_id, model_name]\n",
         "        name: models_tenant_name_key\n        columns: [model_name]\n",
         r"key models_tenant_name_key is UNIQUE \(tenant_id, model_name\) in the table but UNIQUE \(model_name\)"),
    ],
    ids=["removed-column", "changed-type", "narrowed-key"],
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
