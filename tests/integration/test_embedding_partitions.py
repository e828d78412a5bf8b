"""Embeddings partitioned by model: a model's rows are bulk-loaded into a partition of their own, indexed
after they arrive and attached in the loader's transaction; a killed load leaves nothing; a build turns an
existing plain table into partitions without losing a row."""

from __future__ import annotations

import re

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg.conninfo import make_conninfo

from arc_halo import embeddings, errors, search
from conftest import build
from rows import insert_model

WIDTH = 384


def vectors(rows: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, WIDTH)).astype(np.float32)


def partition_of(conn: psycopg.Connection, model_id) -> str | None:
    row = conn.execute(
        """select child.relname from pg_inherits join pg_class as child on child.oid = inhrelid
           where inhparent = 'embeddings'::regclass and pg_get_expr(child.relpartbound, child.oid) like %s""",
        (f"%{model_id}%",)).fetchone()
    return row[0] if row else None


def test_each_model_gets_its_own_indexed_partition(db: psycopg.Connection) -> None:
    register_vector(db)
    first, second = insert_model(db, "first", hidden=WIDTH, heads=12), insert_model(db, "second", hidden=WIDTH, heads=12)
    data = vectors(600, 1)
    texts = [f"token-{index}" for index in range(600)]
    assert embeddings.bulk_load(db, first, [("token", data, texts), ("position", data[:20], None)]) == 620
    assert embeddings.bulk_load(db, second, [("token", vectors(300, 2), None)]) == 300

    partition = partition_of(db, first)
    assert re.fullmatch("embeddings_p[0-9a-f]{16}", partition)  # opaque: no model or tenant id in the name
    assert db.execute("select embedding_partition_name(%s)", (first,)).fetchone()[0] == partition
    assert db.execute(f"select count(*) from {partition}").fetchone()[0] == 620
    assert db.execute("select count(*) from embeddings_default").fetchone()[0] == 0
    # The load built no HNSW index: it is the partition's own, built after the commit (embeddings.build_index).
    assert db.execute("select count(*) from pg_indexes where tablename = %s and indexdef like '%%hnsw%%'",
                      (partition,)).fetchone()[0] == 0
    assert embeddings.partition_of(db, first) == partition
    # A search within one model reads one partition; across models, every one.
    plan = "\n".join(row[0] for row in db.execute(
        "explain select embedding_id from embeddings where model_id = %s and dimensions = 384"
        " order by embedding::vector(384) <=> %s::vector(384) limit 5", (first, data[7])))
    assert partition in plan and "embeddings_default" not in plan and partition_of(db, second) not in plan
    # (position row 7 holds the same vector as token 7: the type decides which of the tie is wanted)
    assert search.nearest(db, data[7], k=1, model_id=first, embedding_type="token")[0][3:5] == (7, "token-7")
    both = {row[1] for row in search.nearest(db, data[7], k=700)}
    assert both == {first, second}

    with pytest.raises(errors.IntegrityError, match="already"):
        embeddings.bulk_load(db, first, [("token", data[:1], None)])


def test_a_killed_load_leaves_nothing(test_server, built_copy) -> None:
    url = test_server.url(built_copy)
    with psycopg.connect(url) as conn:
        model_id = insert_model(conn, "killed", hidden=WIDTH, heads=12)
        conn.commit()
    loader = psycopg.connect(url)
    register_vector(loader)
    partition = loader.execute("select begin_embedding_load(%s)", (model_id,)).fetchone()[0]
    with loader.cursor().copy(f"copy {partition} (model_id, embedding_type, embedding_index, dimensions, embedding)"
                              " from stdin (format binary)") as copy:
        copy.set_types(["uuid", "text", "int4", "int4", "vector"])
        for index, row in enumerate(vectors(100, 3)):
            copy.write_row((model_id, "token", index, WIDTH, row))
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("select to_regclass(%s)", (partition,)).fetchone()[0] is None  # not visible yet
        conn.execute("select pg_terminate_backend(%s)", (loader.info.backend_pid,))
        assert conn.execute("select to_regclass(%s)", (partition,)).fetchone()[0] is None
        assert conn.execute("select count(*) from embeddings where model_id = %s", (model_id,)).fetchone()[0] == 0
        loader.close()
        assert embeddings.bulk_load(conn, model_id, [("token", vectors(10, 4), None)]) == 10  # a new load works


def test_a_plain_table_becomes_partitions_keeping_every_row(test_server, built_copy) -> None:
    """A database built before partitioning (embeddings a plain table with rows) converges on the next build."""
    url = test_server.url(built_copy)
    with psycopg.connect(url) as conn:
        register_vector(conn)
        models = [insert_model(conn, f"old-{index}", hidden=WIDTH, heads=12) for index in range(2)]
        conn.execute("create table embeddings_plain (like embeddings including defaults including constraints)")
        conn.execute(
            """insert into embeddings_plain (model_id, embedding_type, embedding_index, dimensions, embedding)
               select model_id, 'token', index, 384, array_fill(index::real, array[384])::vector
               from unnest(%s::uuid[]) as model_id, generate_series(0, 99) as index""", (models,))
        for statement in (
            "drop table embeddings",
            "alter table embeddings_plain rename to embeddings",
            "alter table embeddings add constraint embeddings_pkey primary key (embedding_id)",
            """create index embeddings_hnsw_cosine_384 on embeddings
               using hnsw ((embedding::vector(384)) vector_cosine_ops) where dimensions = 384""",
        ):
            conn.execute(statement)
        conn.commit()
        before = conn.execute("select embedding_id, model_id, embedding_index, embedding from embeddings"
                              " order by embedding_id").fetchall()
    assert len(before) == 200
    build(test_server, built_copy, "--select", "embeddings", "--exclude", "resource_type:test")
    with psycopg.connect(url) as conn:
        register_vector(conn)
        assert conn.execute("select relkind from pg_class where oid = 'embeddings'::regclass").fetchone()[0] == "p"
        after = conn.execute("select embedding_id, model_id, embedding_index, embedding from embeddings"
                             " order by embedding_id").fetchall()
        assert [row[:3] for row in after] == [row[:3] for row in before]
        assert all(a[3] == b[3] for a, b in zip(after, before))
        assert all(partition_of(conn, model) for model in models)
        assert conn.execute("select count(*) from embeddings_default").fetchone()[0] == 0
        assert conn.execute("select to_regclass('embeddings__unpartitioned')").fetchone()[0] is None
        # The partitioned indexes were made; approximate ones are each partition's own, built after the build.
        assert conn.execute("select count(*) from pg_inherits where inhparent = 'embeddings_model_id_embedding_type_token_text_idx'::regclass"
                            ).fetchone()[0] == 3  # two models and the default partition


def test_another_tenant_cannot_write_into_a_load_in_flight(test_server, rls_copy, app_login) -> None:
    """While A's load is in flight its table is in pg_class (under an opaque name) but B, through the same
    application role, cannot put a row into it: not with A's tenant, not with its own tenant and A's model.
    A row that got there anyway (the owner is exempt from policies) stops the attach, in one line."""
    owner_url = test_server.url(rls_copy)
    app_url = make_conninfo(owner_url, user=app_login)
    with psycopg.connect(owner_url) as owner:
        owner.execute("select set_config('app.tenant_id', 'A', true)")
        model_a = insert_model(owner, "model-a", hidden=WIDTH, heads=12)
        owner.commit()
    with psycopg.connect(app_url) as loader, psycopg.connect(app_url) as intruder:
        loader.execute("select set_config('app.tenant_id', 'A', true)")
        load_table = loader.execute("select begin_embedding_load(%s)", (model_a,)).fetchone()[0]
        assert re.fullmatch("embeddings_p[0-9a-f]{16}", load_table)
        loader.commit()  # a load begun in a transaction of its own (psql, say) stays in flight, visible
        row = ("insert into {} (tenant_id, model_id, embedding_type, embedding_index, dimensions, embedding)"
               " values (%s, %s, 'token', 0, 384, array_fill(1, array[384])::vector)").format(load_table)
        for tenant in ("A", "B"):
            intruder.execute("select set_config('app.tenant_id', 'B', true)")
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                intruder.execute(row, (tenant, model_a))
            intruder.rollback()
        loader.execute("select set_config('app.tenant_id', 'A', true)")
        loader.execute(row.replace("0, 384", "1, 384"), ("A", model_a))  # the loader itself may
        with psycopg.connect(owner_url) as stray:  # a stray row of another tenant, as only the owner could write
            stray.execute(row, ("B", model_a))
            stray.commit()
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation,
                           match="rows of another model or tenant; nothing was attached"):
            loader.execute("select finish_embedding_load(%s)", (model_a,))


def test_partitions_named_after_their_model_are_renamed_by_the_build(test_server, built_copy) -> None:
    """A database built when partitions were named embeddings_<model id> converges: the next build gives
    them opaque names (indexes and constraints too), keeping every row."""
    url = test_server.url(built_copy)
    with psycopg.connect(url) as conn:
        register_vector(conn)
        model_id = insert_model(conn, "legacy", hidden=WIDTH, heads=12)
        embeddings.bulk_load(conn, model_id, [("token", vectors(50, 5), None)])
        partition = partition_of(conn, model_id)
        legacy = f"embeddings_{str(model_id).replace('-', '')}"
        old_names = set()
        for index, in conn.execute("select indexrelid::regclass::text from pg_index where indrelid = %s::regclass"
                                   " and not exists (select from pg_constraint where conindid = indexrelid)",
                                   (partition,)).fetchall():
            old_name = (legacy + index[len(partition):])[:63]  # as the old attach named them, truncated
            if old_name not in old_names:
                conn.execute(f'alter index "{index}" rename to "{old_name}"')
                old_names.add(old_name)
        for constraint, in conn.execute("select conname from pg_constraint where conrelid = %s::regclass",
                                        (partition,)).fetchall():
            old_name = (legacy + constraint[len(partition):])[:63]
            if constraint.startswith(partition) and old_name not in old_names:
                conn.execute(f'alter table {partition} rename constraint "{constraint}" to "{old_name}"')
                old_names.add(old_name)
        conn.execute(f"alter table {partition} rename to {legacy}")
        conn.commit()
        before = conn.execute("select embedding_id, embedding from embeddings order by 1").fetchall()
    build(test_server, built_copy, "--select", "embeddings", "--exclude", "resource_type:test")
    hex_id = str(model_id).replace("-", "")
    with psycopg.connect(url) as conn:
        register_vector(conn)
        renamed = partition_of(conn, model_id)
        assert re.fullmatch("embeddings_p[0-9a-f]{16}", renamed)
        names = [row[0] for row in conn.execute(
            "select relname from pg_class union all select conname from pg_constraint")]
        assert not [name for name in names if hex_id in name]
        after = conn.execute("select embedding_id, embedding from embeddings order by 1").fetchall()
        assert len(after) == len(before) == 50
        assert all(a[0] == b[0] and np.array_equal(a[1].to_numpy(), b[1].to_numpy()) for a, b in zip(after, before))
