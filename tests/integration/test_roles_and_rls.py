"""Issue 6: roles and grants, and row-level security when it is switched on.

As arc_halo_app with tenant A set, tenant B's rows cannot be read, changed or deleted through tables,
views or functions, and rows for B cannot be inserted; with no tenant set nothing is visible. The
analyst role reads the analytics schema only and writes nothing.
"""

from __future__ import annotations

import psycopg
import pytest

from rows import TABLES

TENANT_TABLES = ("models", "tensor_metadata", "training_sessions", "inference_sessions", "cognitive_fusion_reactors")


def as_role(conn: psycopg.Connection, role: str, tenant: str | None) -> None:
    """Act as `role` for tenant `tenant` until the transaction ends (transaction-local, as issue 11 asks)."""
    conn.execute(f"set role {role}")
    conn.execute("select set_config('app.tenant_id', %s, true)", (tenant or "",))


def test_app_sees_only_its_tenant_in_every_table(rls_tenants) -> None:
    url, _, ids = rls_tenants
    with psycopg.connect(url) as owner:
        totals = {table: owner.execute(f"select count(*) from {table}").fetchone()[0] for table in TABLES}
    with psycopg.connect(url) as conn:
        as_role(conn, "arc_halo_app", "A")
        for table in TABLES:
            visible = conn.execute(f"select count(*) from {table}").fetchone()[0]
            if table == "tensor_dtypes":
                assert visible == totals[table]  # reference data, shared
            else:
                assert 0 < visible < totals[table], (table, visible, totals[table])
        assert conn.execute("select count(*) from models where model_id = %s", (ids["B"]["model"],)).fetchone()[0] == 0
        assert conn.execute("select count(*) from tensor_data where tensor_id = %s", (ids["B"]["tensor"],)).fetchone()[0] == 0


def test_app_cannot_change_or_delete_another_tenants_rows(rls_tenants) -> None:
    url, _, ids = rls_tenants
    with psycopg.connect(url) as conn:
        as_role(conn, "arc_halo_app", "A")
        b = ids["B"]
        assert conn.execute("update models set description = 'x' where model_id = %s", (b["model"],)).rowcount == 0
        assert conn.execute("update training_metrics set value = 0 where training_session_id = %s", (b["session"],)).rowcount == 0
        assert conn.execute("delete from kv_cache where inference_session_id = %s", (b["inference"],)).rowcount == 0
        assert conn.execute("delete from cognitive_fusion_reactors where reactor_id = %s", (b["reactor"],)).rowcount == 0
        conn.rollback()


@pytest.mark.parametrize(
    ("statement", "params_key", "error", "message"),
    [
        ("insert into models (tenant_id, model_name, architecture, vocab_size, hidden_size, num_layers,"
         " num_attention_heads, intermediate_size, max_sequence_length)"
         " values ('B', 'smuggled', 'decoder_only', 8, 8, 1, 2, 8, 8)", None,
         psycopg.errors.InsufficientPrivilege, "row-level security policy"),
        # A child row takes the writer's tenant, and its (tenant_id, parent) key finds no such parent.
        ("insert into transformer_layers (model_id, layer_index, hidden_size) values (%s, 7, 8)", "model",
         psycopg.errors.ForeignKeyViolation, "transformer_layers_model_id_fkey"),
        ("insert into training_metrics (training_session_id, metric_name, step, value) values (%s, 'loss', 99, 1)",
         "session", psycopg.errors.ForeignKeyViolation, "training_metrics_training_session_id_fkey"),
        ("insert into reactor_metrics (reactor_id, metric_name, value) values (%s, 'x', 1)", "reactor",
         psycopg.errors.ForeignKeyViolation, "reactor_metrics_reactor_id_fkey"),
    ],
    ids=["tenant-row", "child-of-other-tenant", "metric-of-other-tenant", "reactor-metric-of-other-tenant"],
)
def test_app_cannot_insert_for_another_tenant(rls_tenants, statement, params_key, error, message) -> None:
    url, _, ids = rls_tenants
    with psycopg.connect(url) as conn:
        as_role(conn, "arc_halo_app", "A")
        with pytest.raises(error, match=message):
            conn.execute(statement, (ids["B"][params_key],) if params_key else ())


def test_views_and_functions_respect_the_policies(rls_tenants) -> None:
    url, _, ids = rls_tenants
    with psycopg.connect(url) as conn:
        as_role(conn, "arc_halo_app", "A")
        assert conn.execute("select count(*) from v_model_architecture where model_name like '%%-B'").fetchone()[0] == 0
        assert conn.execute("select count(*) from v_model_architecture where model_name like '%%-A'").fetchone()[0] > 0
        assert conn.execute("select count(*) from v_training_progress where training_session_id = %s",
                            (ids["B"]["session"],)).fetchone()[0] == 0
        assert conn.execute("select count(*) from v_reactor_status where reactor_id = %s",
                            (ids["B"]["reactor"],)).fetchone()[0] == 0
        assert conn.execute("select * from calculate_model_parameters(%s)", (ids["B"]["model"],)).fetchall() == []
        assert conn.execute("select get_latest_checkpoint(%s)", (ids["B"]["model"],)).fetchone()[0] is None
        assert conn.execute("select get_latest_checkpoint(%s)", (ids["A"]["model"],)).fetchone()[0] == ids["A"]["checkpoint"]


def test_without_a_tenant_nothing_is_visible(rls_tenants) -> None:
    url, _, _ = rls_tenants
    with psycopg.connect(url) as conn:
        as_role(conn, "arc_halo_app", None)
        for table in TABLES:
            if table != "tensor_dtypes":
                assert conn.execute(f"select count(*) from {table}").fetchone()[0] == 0, table


def test_analyst_reads_analytics_only_and_writes_nothing(rls_tenants) -> None:
    url, _, ids = rls_tenants
    with psycopg.connect(url) as conn:
        as_role(conn, "arc_halo_analyst", None)
        assert conn.execute("select count(*) from analytics.model_layer_parameters").fetchone()[0] > 0
        for statement in ("select count(*) from models", "select count(*) from tensor_data",
                          "select count(*) from v_training_progress",
                          "insert into reactor_metrics (reactor_id, metric_name, value) values (gen_random_uuid(), 'x', 1)",
                          "delete from analytics.training_run_health", "update models set description = 'x'"):
            conn.execute("savepoint probe")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.execute("rollback to savepoint probe")


def test_rls_is_off_by_default(built_database) -> None:
    with psycopg.connect(built_database) as conn:
        enabled = conn.execute("select count(*) from pg_class where relrowsecurity and relnamespace = 'public'::regnamespace").fetchone()[0]
        assert enabled == 0
