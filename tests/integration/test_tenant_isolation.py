"""Issue 11: cross-tenant attacks, as an application login (a member of arc_halo_app) with row-level
security on and the tenant set per transaction (`set_config('app.tenant_id', ..., true)`).

Tenant A tries to read, change, delete and link tenant B's rows through the tables, the seed's views,
its functions and vector search, and to learn B's ids and names from key errors; B's rows must come
out untouched and B must still be able to delete everything it owns.
"""

from __future__ import annotations

import re
import uuid

import numpy as np
import psycopg
import pytest

from catalog import index_scanned
from rows import TABLES

TENANT_TABLES = tuple(table for table in TABLES if table != "tensor_dtypes")


def tenant(conn: psycopg.Connection, name: str | None) -> psycopg.Connection:
    """Act for tenant `name` until this transaction ends."""
    conn.execute("select set_config('app.tenant_id', %s, true)", (name or "",))
    return conn


def tenant_counts(owner_url: str) -> dict[tuple[str, str], int]:
    """Rows per (table, tenant), as the owner sees them (no policies)."""
    with psycopg.connect(owner_url) as owner:
        return {(table, row[0]): row[1] for table in TENANT_TABLES
                for row in owner.execute(f"select tenant_id, count(*) from {table} group by tenant_id")}


def failure(conn: psycopg.Connection, statement: str, params=()) -> psycopg.Error:
    """Run a statement expected to fail inside a savepoint; return the error."""
    conn.execute("savepoint attempt")
    try:
        conn.execute(statement, params)
    except psycopg.Error as error:
        conn.execute("rollback to savepoint attempt")
        return error
    raise AssertionError(f"expected an error from: {statement}")


def test_every_tenant_table_shows_only_the_callers_rows(rls_tenants) -> None:
    owner_url, app_url, _ = rls_tenants
    counts = tenant_counts(owner_url)
    with psycopg.connect(app_url) as conn:
        tenant(conn, "A")
        for table in TENANT_TABLES:
            assert counts[(table, "B")] > 0, table
            seen = conn.execute(f"select tenant_id, count(*) from {table} group by tenant_id").fetchall()
            assert seen == [("A", counts[(table, "A")])], table


def test_views_and_functions_show_only_the_callers_rows(rls_tenants) -> None:
    _, app_url, ids = rls_tenants
    with psycopg.connect(app_url) as conn:
        tenant(conn, "A")
        for view in ("v_model_architecture", "v_training_progress", "v_reactor_status"):
            tenants = {row[0] for row in conn.execute(f"select tenant_id from {view}")}
            assert tenants == {"A"}, view
        assert conn.execute("select * from calculate_model_parameters(%s)", (ids["B"]["model"],)).fetchall() == []
        assert conn.execute("select * from calculate_model_parameters(%s)", (ids["A"]["model"],)).fetchone()[0] == 4
        assert conn.execute("select get_latest_checkpoint(%s)", (ids["B"]["model"],)).fetchone()[0] is None
        assert conn.execute("select get_latest_checkpoint(%s)", (ids["A"]["model"],)).fetchone()[0] == ids["A"]["checkpoint"]


def test_no_update_or_delete_reaches_another_tenant(rls_tenants) -> None:
    owner_url, app_url, _ = rls_tenants
    before = tenant_counts(owner_url)
    with psycopg.connect(app_url) as conn:
        tenant(conn, "A")
        for table in TENANT_TABLES:
            assert conn.execute(f"update {table} set tenant_id = tenant_id where tenant_id = 'B'").rowcount == 0
            assert conn.execute(f"delete from {table} where tenant_id <> 'A'").rowcount == 0
        conn.commit()
    assert tenant_counts(owner_url) == before


@pytest.mark.parametrize("table", ["models", "transformer_layers", "reactor_models", "training_metrics_latest"])
def test_a_row_cannot_be_moved_to_another_tenant(rls_tenants, table) -> None:
    _, app_url, _ = rls_tenants
    with psycopg.connect(app_url) as conn:
        tenant(conn, "A")
        error = failure(conn, f"update {table} set tenant_id = 'B'")
        assert isinstance(error, psycopg.errors.InsufficientPrivilege), error
        assert "row-level security" in str(error)


# Links from a new or changed row of tenant A to a parent of tenant B: (statement with {own}/{other} ids,
# the parent kind). Every one must fail exactly as if B's id did not exist at all.
LINKS = {
    "layer-to-model": "insert into transformer_layers (model_id, layer_index, hidden_size) values ({other[model]}, 0, 8)",
    "head-to-layer": "insert into attention_heads (layer_id, head_index, head_dim) values ({other[layer]}, 0, 4)",
    "chunk-to-tensor": "insert into tensor_data (tensor_id, chunk_index, chunk_data, chunk_sha256)"
                       " values ({other[tensor]}, 0, '\\x00', repeat('0', 64))",
    "weight-to-model": "insert into model_weights (model_id, parameter_name, tensor_id) values ({other[model]}, 'w', {own[tensor]})",
    "weight-to-tensor": "insert into model_weights (model_id, parameter_name, tensor_id) values ({own[model]}, 'x', {other[tensor]})",
    "weight-to-layer": "update model_weights set layer_id = {other[layer]} where model_id = {own[model]}",
    "embedding-to-model": "insert into embeddings (model_id, embedding_type, embedding_index, dimensions, embedding)"
                          " values ({other[model]}, 'token', 0, 8, '[1,2,3,4,5,6,7,8]')",
    "session-to-model": "insert into training_sessions (model_id, session_name) values ({other[model]}, 'run')",
    "metric-to-session": "insert into training_metrics (training_session_id, metric_name, step, value)"
                         " values ({other[session]}, 'loss', 1, 1)",
    "latest-to-session": "insert into training_metrics_latest (training_session_id, metric_name, step, value, recorded_at)"
                         " values ({other[session]}, 'loss', 1, 1, now())",
    "checkpoint-to-session": "update model_checkpoints set training_session_id = {other[session]} where model_id = {own[model]}",
    "optimizer-to-checkpoint": "update optimizer_state set checkpoint_id = {other[checkpoint]} where training_session_id = {own[session]}",
    "inference-to-model": "insert into inference_sessions (model_id) values ({other[model]})",
    "kv-to-session": "update kv_cache set inference_session_id = {other[inference]} where inference_session_id = {own[inference]}",
    "metric-to-inference": "insert into inference_metrics (inference_session_id, metric_name, value) values ({other[inference]}, 'x', 1)",
    "pattern-to-layer": "update attention_patterns set layer_id = {other[layer]} where inference_session_id = {own[inference]}",
    "own-reactor-to-other-model": "insert into reactor_models (reactor_id, model_id, weight) values ({own[reactor]}, {other[model]}, 0.5)",
    "reactor-model-swap": "update reactor_models set model_id = {other[model]} where reactor_id = {own[reactor]}"
                          " and model_id = {own[model]}",
    "graph-to-model": "update model_interaction_graph set target_model_id = {other[model2]} where reactor_id = {own[reactor]}",
    "state-to-reactor": "insert into cognitive_state (reactor_id, state_key) values ({other[reactor]}, 'focus')",
    "operation-to-reactor": "insert into fusion_operations (reactor_id) values ({other[reactor]})",
}


@pytest.mark.parametrize("link", sorted(LINKS))
def test_no_link_to_another_tenants_row_and_no_existence_oracle(rls_tenants, link) -> None:
    """A row cannot point at B's parent, and the error for B's real id is the error for an id that
    exists nowhere: same class, constraint and text. Nothing is learnt about B."""
    _, app_url, ids = rls_tenants
    fake = {key: str(uuid.uuid4()) for key in ids["B"]}
    own = {key: f"'{value}'" for key, value in ids["A"].items()}
    with psycopg.connect(app_url) as conn:
        tenant(conn, "A")
        real = failure(conn, LINKS[link].format(own=own, other={k: f"'{v}'" for k, v in ids["B"].items()}))
        invented = failure(conn, LINKS[link].format(own=own, other={k: f"'{v}'" for k, v in fake.items()}))
    assert isinstance(real, psycopg.errors.ForeignKeyViolation), real
    assert type(real) is type(invented)
    assert real.diag.constraint_name == invented.diag.constraint_name
    assert real.diag.message_primary == invented.diag.message_primary

    def scrubbed(detail: str | None, values) -> str:
        for value in values:
            detail = (detail or "").replace(str(value), "<id>")
        return detail or ""

    assert scrubbed(real.diag.message_detail, ids["B"].values()) == scrubbed(invented.diag.message_detail, fake.values())


@pytest.mark.parametrize(
    ("statement", "params"),
    [
        # B already has these names; for A they are free, and saying otherwise would reveal them.
        ("insert into models (model_name, architecture, vocab_size, hidden_size, num_layers, num_attention_heads,"
         " intermediate_size, max_sequence_length) values ('everything-B', 'decoder_only', 8, 8, 1, 2, 8, 8)", ()),
        ("insert into cognitive_fusion_reactors (reactor_name, fusion_strategy) values ('reactor-B', 'cascade')", ()),
    ],
    ids=["model-name", "reactor-name"],
)
def test_another_tenants_names_are_free(rls_tenants, statement, params) -> None:
    _, app_url, _ = rls_tenants
    with psycopg.connect(app_url) as conn:
        tenant(conn, "A")
        assert conn.execute(statement, params).rowcount == 1
        conn.rollback()


@pytest.mark.parametrize(
    "statement",
    [
        # Same parent and same per-parent name as a row of B: the key must not report B's row.
        "insert into transformer_layers (model_id, layer_index, hidden_size) values (%(model)s, 0, 8)",
        "insert into model_weights (model_id, parameter_name, tensor_id) values (%(model)s, 'w', gen_random_uuid())",
        "insert into training_sessions (model_id, session_name) values (%(model)s, 'run')",
        "insert into cognitive_state (reactor_id, state_key) values (%(reactor)s, 'focus')",
        "insert into reactor_models (reactor_id, model_id, weight) values (%(reactor)s, %(model)s, 0.5)",
    ],
    ids=["layer-index", "parameter-name", "session-name", "state-key", "reactor-model"],
)
def test_per_parent_names_of_another_tenant_are_not_revealed(rls_tenants, statement) -> None:
    _, app_url, ids = rls_tenants
    with psycopg.connect(app_url) as conn:
        tenant(conn, "A")
        error = failure(conn, statement, ids["B"])
        assert isinstance(error, psycopg.errors.ForeignKeyViolation), error  # not a UniqueViolation


def test_another_tenant_can_still_delete_everything_it_owns(rls_tenants) -> None:
    """After every rls_tenants above (and A's attempts to hold B's rows), B deletes all its rows, and A's stay."""
    owner_url, app_url, ids = rls_tenants
    before = tenant_counts(owner_url)
    with psycopg.connect(app_url) as holder, psycopg.connect(app_url) as conn:
        # A holds an open transaction that touched every parent id of B it knows; it must not block B.
        tenant(holder, "A")
        for parent in ("models", "transformer_layers", "tensor_metadata", "training_sessions", "inference_sessions",
                       "cognitive_fusion_reactors"):
            holder.execute(f"select from {parent} for key share")
        failure(holder, "insert into reactor_models (reactor_id, model_id, weight) values (%s, %s, 1)",
                (ids["A"]["reactor"], ids["B"]["model"]))
        tenant(conn, "B")
        conn.execute("set local lock_timeout = '5s'")
        for table in ("cognitive_fusion_reactors", "optimizer_state", "model_checkpoints", "training_sessions",
                      "inference_sessions", "model_weights", "models", "tensor_metadata"):
            conn.execute(f"delete from {table}")
        conn.commit()
        holder.rollback()
    after = tenant_counts(owner_url)
    assert not [key for key in after if key[1] == "B"], after
    assert {key: count for key, count in before.items() if key[1] == "A"} == after


def test_deleting_sessions_removes_their_children_under_rls(rls_tenants) -> None:
    owner_url, app_url, ids = rls_tenants
    with psycopg.connect(app_url) as conn:
        tenant(conn, "A")
        conn.execute("delete from training_sessions where training_session_id = %s", (ids["A"]["session"],))
        conn.execute("delete from inference_sessions where inference_session_id = %s", (ids["A"]["inference"],))
        conn.commit()
    with psycopg.connect(owner_url) as owner:
        for table, column, key in [
            ("training_metrics", "training_session_id", "session"),
            ("training_metrics_latest", "training_session_id", "session"),
            ("optimizer_state", "training_session_id", "session"),
            ("kv_cache", "inference_session_id", "inference"),
            ("activation_cache", "inference_session_id", "inference"),
            ("inference_metrics", "inference_session_id", "inference"),
            ("attention_patterns", "inference_session_id", "inference"),
        ]:
            assert owner.execute(f"select count(*) from {table} where {column} = %s", (ids["A"][key],)).fetchone()[0] == 0, table
        # The checkpoint outlives its session, as the owner's delete would leave it (on delete set null).
        assert owner.execute("select training_session_id from model_checkpoints where checkpoint_id = %s",
                             (ids["A"]["checkpoint"],)).fetchone() == (None,)


def test_the_metric_cascade_function_is_not_a_way_in(rls_tenants) -> None:
    _, app_url, _ = rls_tenants
    with psycopg.connect(app_url) as conn:
        definer, config, public_execute = conn.execute(
            "select prosecdef, proconfig, has_function_privilege('public', oid, 'execute') from pg_proc"
            " where proname = 'training_sessions_delete_metrics'").fetchone()
        assert definer and any(setting.startswith("search_path=") for setting in config) and not public_execute
        error = failure(conn, "select training_sessions_delete_metrics()")
        assert isinstance(error, (psycopg.errors.InsufficientPrivilege, psycopg.errors.FeatureNotSupported)), error


def test_without_a_tenant_nothing_is_visible_or_writable(rls_tenants) -> None:
    _, app_url, ids = rls_tenants
    with psycopg.connect(app_url) as conn:
        for table in TENANT_TABLES:
            assert conn.execute(f"select count(*) from {table}").fetchone()[0] == 0, table
        for view in ("v_model_architecture", "v_training_progress", "v_reactor_status"):
            assert conn.execute(f"select count(*) from {view}").fetchone()[0] == 0, view
        error = failure(conn, "insert into cognitive_fusion_reactors (reactor_name, fusion_strategy) values ('x', 'cascade')")
        assert isinstance(error, psycopg.errors.InsufficientPrivilege), error
        conn.rollback()
        # The tenant lasts for one transaction only: after commit, the next one sees nothing again.
        tenant(conn, "A")
        assert conn.execute("select count(*) from models").fetchone()[0] > 0
        conn.commit()
        assert conn.execute("select count(*) from models").fetchone()[0] == 0


def test_shared_reference_data_is_read_only(rls_tenants) -> None:
    owner_url, app_url, _ = rls_tenants
    with psycopg.connect(owner_url) as owner:
        seeds = [row[0] for row in owner.execute(
            "select format('%I.%I', schemaname, tablename) from pg_tables where tablename = 'tensor_dtype_catalog'")]
    assert seeds
    with psycopg.connect(app_url) as conn:
        tenant(conn, "A")
        assert conn.execute("select count(*) from tensor_dtypes where dtype = 'float32'").fetchone()[0] == 1
        for statement in ["update tensor_dtypes set bits_per_element = 64 where dtype = 'float32'",
                          "delete from tensor_dtypes where dtype = 'float32'",
                          "insert into tensor_dtypes (dtype, bits_per_element, numpy_name, value_kind) values ('x', 8, 'x', 'int')",
                          f"delete from {seeds[0]}", f"insert into {seeds[0]} (dtype) values ('x')"]:
            error = failure(conn, statement)
            assert isinstance(error, psycopg.errors.InsufficientPrivilege), (statement, error)


def test_filtered_vector_search_returns_k_of_the_callers_rows(rls_tenants, monkeypatch) -> None:
    """Many of B's vectors lie nearer the query than any of A's. Each model's vectors are a partition with
    an HNSW index of its own, so B's never fill the candidates of A's index; through the indexes A gets
    its k nearest and none of B's, with the plain query and with search.nearest."""
    from arc_halo import embeddings, search

    monkeypatch.setattr(embeddings, "EXACT_BELOW_ROWS", 10)  # index partitions this small (the default: thousands)
    owner_url, app_url, _ = rls_tenants
    width, k = 384, 10
    rng = np.random.default_rng(11)
    query = rng.normal(size=width).astype(np.float32)
    near = query + rng.normal(scale=0.05, size=(1500, width)).astype(np.float32)
    far = rng.normal(size=(40, width)).astype(np.float32)
    as_text = lambda vector: "[" + ",".join(f"{x:.5f}" for x in vector) + "]"  # noqa: E731
    with psycopg.connect(owner_url) as owner:
        models = {}
        for name, vectors in (("B", near), ("A", far)):
            owner.execute("select set_config('app.tenant_id', %s, true)", (name,))
            models[name] = owner.execute(
                "insert into models (model_name, architecture, vocab_size, hidden_size, num_layers, num_attention_heads,"
                " intermediate_size, max_sequence_length) values ('wide', 'encoder_only', %s, %s, 1, 1, 8, 8)"
                " returning model_id", (len(vectors), width)).fetchone()[0]
            with owner.cursor().copy("copy embeddings (model_id, embedding_type, embedding_index, dimensions, embedding)"
                                     " from stdin") as copy:
                for index, vector in enumerate(vectors):
                    copy.write_row((models[name], "token", index, width, as_text(vector)))
            owner.commit()
        owner.execute("select count(*) from split_embedding_partitions()")  # what the next build does
        owner.commit()
        for name in ("A", "B"):
            assert embeddings.build_index(owner, models[name]).state == "ready"
        owner.execute("analyze embeddings")
        owner.commit()
    distance = f"embedding::vector({width}) <=> %(query)s::vector({width})"
    plain = (f"select tenant_id from embeddings where dimensions = {width} order by {distance} limit {k}")
    with psycopg.connect(app_url) as conn:
        tenant(conn, "A")
        # The planner may rightly read a small tenant's rows exactly (tenant_id is in the keys); k either way.
        assert conn.execute(plain, {"query": as_text(query)}).fetchall() == [("A",)] * k
        # Through the HNSW indexes, as on a table where the tenant's rows are many:
        conn.execute("set local enable_seqscan = off")
        conn.execute("set local enable_sort = off")
        plan = "".join(row[0] for row in conn.execute("explain " + plain, {"query": as_text(query)}))
        assert index_scanned(conn, plan) is not None, plan
        assert conn.execute(plain, {"query": as_text(query)}).fetchall() == [("A",)] * k
        found = search.nearest(conn, query, k=k)
        assert found.method == "hnsw" and len(found) == k and {row[1] for row in found} == {models["A"]}


# ---- issue 18 §2: no way around the policies through the library, the planner or the file system ----

def test_library_lookups_by_name_or_id_keep_to_the_tenant_without_policies(private_rls_tenants, tmp_path) -> None:
    """As the owner (no policies apply) acting for B, the library finds none of A's weights by model name,
    model id, tensor id or a checkpoint's weight_tensors."""
    from arc_halo import hf, tensors, training
    from arc_halo.errors import NotFoundError

    owner_url, _, ids = private_rls_tenants
    with psycopg.connect(owner_url) as conn:
        assert not conn.execute("select row_security_active('tensor_metadata')").fetchone()[0]
        tenant(conn, "A")
        assert tensors.get_parameter(conn, "everything-A", "w").shape == (2, 2)  # A itself finds them
        conn.rollback()
        tenant(conn, "B")
        for model in ("everything-A", ids["A"]["model"]):
            with pytest.raises(NotFoundError):
                tensors.get_parameter(conn, model, "w")
            with pytest.raises(NotFoundError):
                hf.export_model(conn, model, tmp_path / "out.safetensors")
        with pytest.raises(NotFoundError):
            tensors.get(conn, ids["A"]["tensor"])
        with pytest.raises(NotFoundError):
            training.load_checkpoint(conn, ids["A"]["checkpoint"])
        # A checkpoint of B's naming A's tensor (written with the checks off, as only a superuser could).
        conn.execute("set local session_replication_role = replica")
        conn.execute("update model_checkpoints set weight_tensors = jsonb_build_object('w', %s::text)"
                     " where checkpoint_id = %s", (ids["A"]["tensor"], ids["B"]["checkpoint"]))
        conn.execute("set local session_replication_role = origin")
        with pytest.raises(NotFoundError, match=str(ids["A"]["tensor"])):
            training.load_checkpoint(conn, ids["B"]["checkpoint"])


def test_a_content_lookup_plans_alike_whether_or_not_another_tenant_stores_the_content(private_rls_tenants) -> None:
    """EXPLAIN ANALYZE of B's lookup by A's content_sha256 shows what it shows for content nobody stores:
    the index is keyed by tenant first, so no row of A's is even visited."""
    owner_url, app_url, _ = private_rls_tenants
    only_a = "ab" * 32
    with psycopg.connect(owner_url) as owner:
        tenant(owner, "A")
        owner.execute("update tensor_metadata set content_sha256 = %s where tenant_id = 'A'", (only_a,))
        owner.execute("insert into tensor_metadata (tensor_name, shape, dtype, element_count, byte_size, content_sha256,"
                      " chunk_size_bytes, chunk_count) select 'copy-' || i, '{2,2}', 'float32', 4, 16, %s, 1048576, 1"
                      " from generate_series(1, 200) as i", (only_a,))
        owner.commit()
        owner.execute("analyze tensor_metadata")
        owner.commit()

    def plan(conn, digest: str) -> str:
        conn.execute("set local enable_seqscan = off")  # the plan a large table gets
        text = "\n".join(row[0] for row in conn.execute(
            "explain (analyze, costs off, timing off, summary off, buffers off)"
            " select tensor_id from tensor_metadata where content_sha256 = %s", (digest,)))
        return text.replace(digest, "<digest>")

    with psycopg.connect(app_url) as conn:
        tenant(conn, "B")
        real, invented = plan(conn, only_a), plan(conn, "cd" * 32)
    assert re.search(r"Index Cond: \(\(?tenant_id = ", real), real  # only the caller's tenant is visited
    assert real == invented


def test_external_uris_outside_the_configured_stores_are_refused_alike(private_rls_tenants, tmp_path) -> None:
    """A tenant cannot point a tensor at a file of the reading machine: refused on write (library and
    database) and, for a row that got there anyway, on read with one message whether or not the file exists."""
    import numpy as np

    from arc_halo import tensors
    from arc_halo.errors import InvalidInputError

    owner_url, app_url, _ = private_rls_tenants
    store_root = tmp_path / "store"
    with psycopg.connect(owner_url) as owner:
        tenant(owner, "A")
        stored = tensors.put(owner, np.arange(4, dtype=np.float32), "kept", store=tensors.FileStore(store_root))
        owner.commit()  # the owner's first write registered the store
        assert owner.execute("select uri_prefix from external_stores").fetchall() == [(store_root.as_uri(),)]
    escaping = ["file:///etc/shadow", f"{store_root.as_uri()}/../../../etc/shadow", f"{store_root.as_uri()}/%2e%2e/x",
                f"file://localhost{store_root}/x", f"{store_root.as_uri()}-sibling/x"]
    with psycopg.connect(app_url) as conn:
        tenant(conn, "A")
        assert tensors.get(conn, stored).tolist() == [0, 1, 2, 3]
        for uri in escaping:
            error = failure(conn, "insert into tensor_metadata (tensor_name, shape, dtype, element_count, byte_size,"
                                  " content_sha256, storage_kind, external_uri) values ('x', '{2}', 'float32', 2, 8,"
                                  " repeat('0', 64), 'external', %s)", (uri,))
            assert isinstance(error, psycopg.errors.CheckViolation), (uri, error)
            assert error.diag.constraint_name == "tensor_metadata_external_uri_check"
        with pytest.raises(InvalidInputError, match="not under a store this database is configured to use"):
            tensors.put(conn, np.ones(3, dtype=np.float32), "elsewhere", store=tensors.FileStore(tmp_path / "other"))
        assert not (tmp_path / "other").exists()  # refused before a byte was written
        error = failure(conn, "insert into external_stores (uri_prefix) values ('file:///etc')")
        assert isinstance(error, psycopg.errors.InsufficientPrivilege), error
    with psycopg.connect(owner_url) as owner:  # rows written before the check existed
        tenant(owner, "A")
        owner.execute("alter table tensor_metadata disable trigger tensor_metadata_external_uri_check")
        planted = [owner.execute("insert into tensor_metadata (tensor_name, shape, dtype, element_count, byte_size,"
                                 " content_sha256, storage_kind, external_uri) values ('planted', '{2}', 'float32', 2, 8,"
                                 " repeat('0', 64), 'external', %s) returning tensor_id", (uri,)).fetchone()[0]
                   for uri in ("file:///etc/shadow", "file:///nonexistent/shadow")]
        owner.execute("alter table tensor_metadata enable trigger tensor_metadata_external_uri_check")
        owner.commit()
    messages = []
    with psycopg.connect(app_url) as conn:
        tenant(conn, "A")
        for tensor_id in planted:
            with pytest.raises(tensors.TensorIntegrityError) as raised:
                tensors.get(conn, tensor_id)
            messages.append(str(raised.value).replace(str(tensor_id), "<id>"))
    assert messages[0] == messages[1] and "not under a store" in messages[0] and "shadow" not in messages[0]
