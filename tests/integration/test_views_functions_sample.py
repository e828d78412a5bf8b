"""Issue 4: the seed's examples on the sample data, parameter counts by hand, unknown ids, and the
Python models' outputs over the sample (how they build and fail: test_python_models.py)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import psycopg
import pytest

from arc_halo import environments, sample, tensors
from conftest import build, sample_copy_of
from rows import insert_model, table_contents


@pytest.fixture(scope="module")
def sample_database(test_server, template_database):
    """A built copy with the sample data, then the Python models (and what is built on them) rebuilt
    over it by plain `dbt build`, as `make run` does."""
    for name, model_id in sample_copy_of(test_server, template_database):
        build(test_server, name, "--select", "path:models/python+")
        yield test_server.url(name), model_id


def hand_count(shape: sample.ModelShape) -> tuple[int, int]:
    total = sum(math.prod(dims) for _, _, _, dims in sample.gpt2_parameters(shape))
    frozen = math.prod(dict((n, d) for n, _, _, d in sample.gpt2_parameters(shape))["wpe.weight"])
    return total, frozen


def test_seed_examples_verbatim(sample_database) -> None:
    url, model_id = sample_database
    total, frozen = hand_count(sample.FUSION_1)
    with psycopg.connect(url) as conn:  # default search path, no settings: as an analyst connects
        cursor = conn.execute("SELECT * FROM v_model_architecture WHERE model_name = 'gpt-fusion-1';")
        names = [c.name for c in cursor.description]
        rows = [dict(zip(names, row)) for row in cursor.fetchall()]
        assert [row["layer_index"] for row in rows] == [0, 1]
        assert all(row["head_count"] == 6 and row["weight_count"] == 12 for row in rows)
        assert rows[0]["model_total_parameters"] == total

        cursor = conn.execute("SELECT * FROM v_training_progress WHERE status = 'running';")
        names = [c.name for c in cursor.description]
        (progress,) = [dict(zip(names, row)) for row in cursor.fetchall()]
        assert progress["session_name"] == "gpt-fusion-1-pretrain"
        assert float(progress["percent_complete"]) == 42.0
        last_loss = conn.execute(
            "select value from training_metrics where training_session_id = %s and metric_name = 'loss'"
            " order by step desc limit 1", (progress["training_session_id"],)).fetchone()[0]
        assert progress["latest_loss"] == last_loss
        assert progress["estimated_time_remaining"] is not None

        cursor = conn.execute("SELECT * FROM v_reactor_status WHERE status = 'active';")
        names = [c.name for c in cursor.description]
        (reactor,) = [dict(zip(names, row)) for row in cursor.fetchall()]
        assert reactor["reactor_name"] == "arc-halo-prime"
        assert (reactor["model_count"], reactor["operation_count"]) == (2, 50)
        assert 0 < reactor["success_rate"] < 1

        counts = conn.execute(f"SELECT * FROM calculate_model_parameters('{model_id}');").fetchall()
        assert counts == [(total, total - frozen, frozen)]

        latest = conn.execute(f"SELECT get_latest_checkpoint('{model_id}');").fetchone()[0]
        assert conn.execute("select step from model_checkpoints where checkpoint_id = %s", (latest,)).fetchone()[0] == 400


def test_sample_load_is_idempotent(sample_database) -> None:
    url, _ = sample_database
    with psycopg.connect(url) as conn:
        before = conn.execute("select count(*) from tensor_metadata").fetchone()[0]
        assert sample.load(conn) is None
        assert conn.execute("select count(*) from tensor_metadata").fetchone()[0] == before


def test_sample_weights_round_trip(sample_database) -> None:
    url, model_id = sample_database
    with psycopg.connect(url) as conn:
        tensor_id = conn.execute("select tensor_id from model_weights where model_id = %s and parameter_name = 'wte.weight'",
                                 (model_id,)).fetchone()[0]
        wte = tensors.get(conn, tensor_id)
        assert wte.shape == (256, 384) and wte.dtype == np.float32


def test_parameter_counts_by_hand(db) -> None:
    model_id = insert_model(db, "hand-counted")
    for name, shape, trainable in (("a", (3, 4), True), ("b", (5,), False), ("c", (), True), ("d", (0, 7), True)):
        tensor_id = tensors.put(db, np.zeros(shape, dtype=np.float32), name)
        db.execute("insert into model_weights (model_id, parameter_name, tensor_id, requires_grad) values (%s, %s, %s, %s)",
                   (model_id, name, tensor_id, trainable))
    assert db.execute("select * from calculate_model_parameters(%s)", (model_id,)).fetchall() == [(18, 13, 5)]
    empty = insert_model(db, "no-weights")
    assert db.execute("select * from calculate_model_parameters(%s)", (empty,)).fetchall() == [(0, 0, 0)]


def test_unknown_model_id(db) -> None:
    unknown = "00000000-0000-0000-0000-000000000000"
    assert db.execute(f"SELECT * FROM calculate_model_parameters('{unknown}');").fetchall() == []
    assert db.execute(f"SELECT get_latest_checkpoint('{unknown}');").fetchone()[0] is None


def test_python_model_outputs_feed_their_views(sample_database) -> None:
    url, model_id = sample_database
    with psycopg.connect(url) as conn:
        styles = dict(conn.execute("select head_index, attention_style from analytics.attention_head_stats"
                                   " where layer_id in (select layer_id from transformer_layers where layer_index = 0)"))
        assert styles[0] != "local" and styles[5] == "local"  # head 0 of the sample spreads, head 5 focuses
        missing = conn.execute("select count(*) from attention_patterns where mean_entropy is null or max_weight is null")
        assert missing.fetchone()[0] == 0  # written through inference.record_attention, summaries included
        health = conn.execute("select health, is_diverging from analytics.training_run_health").fetchall()
        assert ("improving", False) in health




def test_make_run_again_changes_nothing(test_server, sample_database) -> None:
    """`make run` is `arc-halo run`: build, load the sample, rebuild the Python models (what the
    sample_database fixture did). Running it again on that database must leave every table's rows exactly
    as they were."""
    url, _ = sample_database
    env = {**os.environ, **environments.url_environment(url), "ARC_HALO_DATABASE_URL": url}
    with psycopg.connect(url) as conn:
        before = table_contents(conn)
    assert before["models"][0] > 0  # the sample is there
    result = subprocess.run([str(Path(sys.executable).parent / "arc-halo"), "run"], env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "v_model_architecture" in result.stdout
    with psycopg.connect(url) as conn:
        after = table_contents(conn)
    assert {table for table in before if before[table] != after.get(table)} == set()
