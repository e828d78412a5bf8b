"""Attention-head statistics from attention_patterns: entropy, sparsity and how locally each head attends.

One output row per (inference session, layer, head), over all of that head's stored patterns. Column
types and descriptions are in _python__models.yml.
"""

import numpy as np

from arc_halo.inference import row_entropies

LOCAL_WINDOW = 2  # |query - key| <= 2 counts as local attention
SPARSE_BELOW = 0.01  # weights under 1% count as (near) zero
LOCAL_STYLE_SHARE = 0.7
BROAD_STYLE_ENTROPY = 0.6
COLUMNS = ("inference_session_id", "layer_id", "head_index", "pattern_count", "query_count", "mean_entropy",
           "normalized_entropy", "sparsity", "mean_attention_distance", "local_attention_share", "max_row_sum_error",
           "attention_style")


def pattern_stats(weights, query_start, query_end, key_start, key_end) -> dict[str, float]:
    """Sums over one stored pattern (a query x key block), to be pooled per head."""
    matrix = np.asarray(weights, dtype=np.float64).reshape(query_end - query_start, key_end - key_start)
    distance = np.abs(np.arange(query_start, query_end)[:, None] - np.arange(key_start, key_end)[None, :])
    entropy = row_entropies(matrix)
    return {
        "rows": matrix.shape[0],
        "entropy_sum": float(entropy.sum()),
        "normalized_entropy_sum": float((entropy / np.log(max(matrix.shape[1], 2))).sum()),
        "sparse": float((matrix < SPARSE_BELOW).sum()),
        "cells": float(matrix.size),
        "distance_sum": float((matrix * distance).sum()),
        "local_sum": float((matrix * (distance <= LOCAL_WINDOW)).sum()),
        "mass": float(matrix.sum()),
        "row_error": float(np.abs(matrix.sum(axis=1) - 1.0).max()),
    }


def head_row(stats: list[dict[str, float]]) -> dict:
    """One head's output columns (without its keys) from its patterns' sums."""
    total = {name: sum(s[name] for s in stats) for name in stats[0]}
    local_share = total["local_sum"] / total["mass"] if total["mass"] else 0.0
    normalized = total["normalized_entropy_sum"] / total["rows"]
    style = "local" if local_share >= LOCAL_STYLE_SHARE else ("broad" if normalized >= BROAD_STYLE_ENTROPY else "mixed")
    return {
        "pattern_count": len(stats), "query_count": int(total["rows"]),
        "mean_entropy": total["entropy_sum"] / total["rows"], "normalized_entropy": normalized,
        "sparsity": total["sparse"] / total["cells"],
        "mean_attention_distance": total["distance_sum"] / total["mass"] if total["mass"] else 0.0,
        "local_attention_share": local_share, "max_row_sum_error": max(s["row_error"] for s in stats),
        "attention_style": style,
    }


def model(dbt, session):
    dbt.config(materialized="table")
    patterns = dbt.ref("attention_patterns")
    groups: dict[tuple, list[dict[str, float]]] = {}
    for i in range(len(patterns["attention_pattern_id"])):
        key = (patterns["inference_session_id"][i], patterns["layer_id"][i], int(patterns["head_index"][i]))
        groups.setdefault(key, []).append(pattern_stats(
            patterns["weights"][i], patterns["query_start"][i], patterns["query_end"][i],
            patterns["key_start"][i], patterns["key_end"][i],
        ))
    out: dict[str, list] = {name: [] for name in COLUMNS}
    for (session_id, layer_id, head_index), stats in sorted(groups.items(), key=lambda item: tuple(map(str, item[0]))):
        row = {"inference_session_id": session_id, "layer_id": layer_id, "head_index": head_index, **head_row(stats)}
        for name in COLUMNS:
            out[name].append(row[name])
    return out
