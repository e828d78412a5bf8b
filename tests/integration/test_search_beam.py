"""Issue 19 §3: the adaptive beam. Through a dense graph (m >= search.NARROW_MIN_M) a search walks a narrow
beam first and walks the wide one only when the narrow walk's candidates show a crowded neighbourhood;
the result says which beam it took (`ef_search`), and its rows are the exact search's either way. A
caller's own ef_search, and a sparser graph, get one walk of the beam they name."""

from __future__ import annotations

import dataclasses
import uuid

import numpy as np
import psycopg
import pytest

from arc_halo import embeddings, search
from rows import insert_model

K = 10
PLANNED = embeddings.plan_index  # the library's plan, before any test replaces it


def dense_graphs(monkeypatch, m: int = search.NARROW_MIN_M, ef_construction: int | None = None) -> None:
    """Partitions of a few thousand rows indexed with a graph of m (by default the density large ones get;
    a smaller ef_construction than theirs unless given, so the test builds fast)."""
    monkeypatch.setattr(embeddings, "EXACT_BELOW_ROWS", 100)
    monkeypatch.setattr(embeddings, "plan_index", lambda rows, width: dataclasses.replace(
        PLANNED(rows, width), m=m, ef_construction=ef_construction or max(64, 2 * m)) if rows >= 100 else PLANNED(rows, width))


def load(conn: psycopg.Connection, name: str, table: np.ndarray) -> uuid.UUID:
    model_id = insert_model(conn, name, hidden=table.shape[1], heads=8)
    embeddings.bulk_load(conn, model_id, [("token", table, None)])
    assert embeddings.build_index(conn, model_id).state == "ready"
    return model_id


def clustered(rows: int, width: int, seed: int) -> np.ndarray:
    """Tight clusters of 30 far apart: a member's k nearest are its own cluster, well clear of the rest."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((rows // 30, width))
    return (np.repeat(centres, 30, axis=0) + 0.02 * rng.standard_normal((rows // 30 * 30, width))).astype(np.float32)


def crowded(rows: int, width: int, seed: int) -> np.ndarray:
    """Random directions in many dimensions: every vector's 10th nearest is barely nearer than its 40th."""
    return np.random.default_rng(seed).standard_normal((rows, width)).astype(np.float32)


@pytest.fixture
def dense_db(committing_db, monkeypatch) -> psycopg.Connection:
    """A private database (it commits) whose partitions get dense graphs."""
    committing_db.autocommit = True
    dense_graphs(monkeypatch)
    return committing_db


def nearest_checked(conn: psycopg.Connection, query: np.ndarray, model_id: uuid.UUID, **options) -> search.SearchResult:
    """The approximate search's rows, checked against the exact search's: sorted, no row twice (two walks
    merged), at most one of the k missed."""
    found = search.nearest(conn, query, k=K, model_id=model_id, **options)
    exact = search.nearest(conn, query, k=K, model_id=model_id, exact=True)
    assert exact.exact and exact.ef_search is None
    distances = [row[5] for row in found]
    assert len(found) == K and distances == sorted(distances)
    assert len({row[0] for row in found}) == K
    assert len({row[3] for row in found} & {row[3] for row in exact}) >= K - 1, (found, exact)
    return found


def test_a_clear_neighbourhood_takes_one_narrow_walk(dense_db) -> None:
    table = clustered(3_000, 64, seed=1)
    model_id = load(dense_db, "clusters", table)
    for row in (0, 451, 2_999):
        found = nearest_checked(dense_db, table[row], model_id)
        assert (found.method, found.ef_search) == ("hnsw", search.NARROW_BEAM)
        assert {hit[3] // 30 for hit in found} == {row // 30}  # its own cluster


def test_a_crowded_neighbourhood_is_walked_again_with_the_wide_beam(dense_db) -> None:
    table = crowded(3_000, 512, seed=2)
    model_id = load(dense_db, "crowd", table)
    wide = search.default_ef_search(len(table), K)
    assert wide > search.NARROW_BEAM
    probe = np.random.default_rng(3).standard_normal(512).astype(np.float32)  # not a stored vector
    for query in (table[7], table[1_234], probe):
        found = nearest_checked(dense_db, query, model_id)
        assert (found.method, found.ef_search) == ("hnsw", wide)
    assert search.nearest(dense_db, table[7], k=K, model_id=model_id)[0][3] == 7


def test_a_callers_beam_and_a_sparse_graph_take_one_walk_of_the_beam_they_name(dense_db, monkeypatch) -> None:
    table = clustered(3_000, 64, seed=4)
    dense = load(dense_db, "dense", table)
    assert nearest_checked(dense_db, table[5], dense, ef_search=60).ef_search == 60

    dense_graphs(monkeypatch, m=search.NARROW_MIN_M // 2)  # as an earlier plan built it
    sparse = load(dense_db, "sparse", table + 1.0)
    assert embeddings.index_status(dense_db, sparse).index_plan.m == search.NARROW_MIN_M // 2
    assert nearest_checked(dense_db, table[5] + 1.0, sparse).ef_search == search.default_ef_search(len(table), K)

    # Both models at once: each searched its own way, the result names the widest beam walked.
    both = search.nearest(dense_db, table[5], k=K)
    assert both.method == "hnsw" and both.ef_search == search.default_ef_search(len(table), K)


@pytest.mark.parametrize("k", [1, 10, 20])
def test_the_narrow_walk_grows_with_k(dense_db, k) -> None:
    """The narrow walk keeps NARROW_PER_RESULT candidates per result wanted, so the k-th is never its last
    (k=20: 80 candidates, still narrower than the wide beam); a query's own cluster of 30 is clear."""
    table = clustered(3_000, 64, seed=5)
    model_id = load(dense_db, f"k{k}", table)
    narrow = max(search.NARROW_BEAM, search.NARROW_PER_RESULT * k)
    assert narrow < search.default_ef_search(len(table), k)
    found = search.nearest(dense_db, table[40], k=k, model_id=model_id)
    assert len(found) == k and found[0][3] == 40 and found.ef_search == narrow
    assert {hit[3] // 30 for hit in found} == {1}


def test_real_token_embeddings_keep_their_recall_with_the_adaptive_beam(dense_db, monkeypatch) -> None:
    """SmolLM2-135M's real token vectors (a decoder's narrow cone, where recall is hard), with the graph
    large partitions get (m=48, ef_construction=200) on 12,000 of them, 100 token queries against numpy:
    at the defaults recall@10 >= 0.95, every token finds itself, most queries take one narrow walk, and
    the queries walked again gain over the narrow walk alone (ef_search=NARROW_BEAM, one walk)."""
    import real_models

    table = real_models.token_table(real_models.smollm2_gguf())[:12_000]
    large = PLANNED(262_144, table.shape[1])
    dense_graphs(monkeypatch, large.m, large.ef_construction)
    model_id = load(dense_db, "smollm2-tokens", table)
    normed = table / np.linalg.norm(table, axis=1, keepdims=True)
    adaptive, narrow_only, narrow = [], [], 0
    for row in np.random.default_rng(19).choice(len(table), 100, replace=False):
        distances = 1 - normed @ normed[row]
        kth = np.partition(distances, K - 1)[K - 1]

        def recall(found: search.SearchResult) -> float:
            return sum(distances[hit[3]] <= kth + 1e-6 for hit in found) / K

        found = search.nearest(dense_db, table[row], k=K, model_id=model_id)
        assert any(distances[hit[3]] <= 1e-6 for hit in found), row  # itself, or a vector identical to it
        adaptive.append(recall(found))
        narrow += found.ef_search == search.NARROW_BEAM
        if found.ef_search != search.NARROW_BEAM:
            narrow_only.append((recall(found), recall(search.nearest(dense_db, table[row], k=K, model_id=model_id,
                                                                        ef_search=search.NARROW_BEAM))))
    assert np.mean(adaptive) >= 0.95, np.mean(adaptive)
    assert 50 <= narrow < 100, narrow  # most, not all: this vocabulary has crowded tokens
    walked_again, alone = np.mean(narrow_only, axis=0)
    assert walked_again > alone, (walked_again, alone, len(narrow_only))
