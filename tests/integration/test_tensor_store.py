"""The tensor store (issue 5's foundation): exact round trips for every dtype in the dtype seed and the
edge shapes, corruption named by tensor and chunk, and no visible tensor after a killed upload."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import ml_dtypes
import numpy as np
import psycopg
import pytest

from arc_halo import tensors
from arc_halo.dtypes import NUMPY_DTYPES

SHAPES = {"scalar": (), "empty": (0, 3), "one-chunk": (16,), "many-chunks": (33, 7)}


def sample_array(dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(3)
    raw = rng.integers(0, 256, size=int(np.prod(shape)) * dtype.itemsize, dtype=np.uint8)
    array = raw.view(dtype).reshape(shape) if shape else raw.view(dtype).reshape(())
    if dtype.kind == "b":
        array = raw[: int(np.prod(shape))].astype(bool).reshape(shape)
    return array


def test_dtype_seed_and_numpy_mapping_agree(db) -> None:
    seeded = dict(db.execute("select dtype, bits_per_element from tensor_dtypes"))
    assert set(seeded) == set(NUMPY_DTYPES)
    for name, dtype in NUMPY_DTYPES.items():
        assert seeded[name] == dtype.itemsize * 8, name


@pytest.mark.parametrize("shape_name", SHAPES)
@pytest.mark.parametrize("dtype_name", sorted(NUMPY_DTYPES))
def test_round_trip_is_bit_exact(db, dtype_name, shape_name) -> None:
    dtype, shape = NUMPY_DTYPES[dtype_name], SHAPES[shape_name]
    array = sample_array(dtype, shape)
    chunk = 64 if shape_name == "many-chunks" else 1 << 20  # many-chunks: ~several chunks of 64 bytes
    tensor_id = tensors.put(db, array, f"{dtype_name}-{shape_name}", chunk_bytes=chunk)
    back = tensors.get(db, tensor_id)
    assert back.dtype == dtype and back.shape == shape
    assert back.tobytes() == np.ascontiguousarray(array).tobytes()  # bit-identical, NaN payloads included
    chunks = db.execute("select count(*) from tensor_data where tensor_id = %s", (tensor_id,)).fetchone()[0]
    expected = -(-array.nbytes // chunk)
    assert chunks == expected


def test_non_contiguous_and_big_endian_inputs(db) -> None:
    transposed = np.arange(12, dtype=np.float32).reshape(3, 4).T
    assert np.array_equal(tensors.get(db, tensors.put(db, transposed, "t")), transposed)
    big = np.arange(5, dtype=">i4")
    back = tensors.get(db, tensors.put(db, big, "b"))
    assert back.dtype == np.dtype("<i4") and np.array_equal(back, big)
    bf16 = np.array([1.5, -2.25, np.inf], dtype=ml_dtypes.bfloat16)
    assert tensors.get(db, tensors.put(db, bf16, "bf")).tobytes() == bf16.tobytes()


def test_corrupted_chunk_is_named(db) -> None:
    tensor_id = tensors.put(db, np.arange(100, dtype=np.float64), "victim", chunk_bytes=128)
    db.execute("update tensor_data set chunk_data = overlay(chunk_data placing '\\xff'::bytea from 3)"
               " where tensor_id = %s and chunk_index = 4", (tensor_id,))
    with pytest.raises(tensors.TensorIntegrityError, match=rf"tensor {tensor_id} \(victim\): chunk 4 is corrupted"):
        tensors.get(db, tensor_id)


def test_missing_chunk_is_named(db) -> None:
    tensor_id = tensors.put(db, np.arange(100, dtype=np.float64), "holey", chunk_bytes=128)
    db.execute("delete from tensor_data where tensor_id = %s and chunk_index = 2", (tensor_id,))
    with pytest.raises(tensors.TensorIntegrityError, match="chunk 2 is missing"):
        tensors.get(db, tensor_id)


UPLOADER = """
import sys, numpy as np, psycopg
from arc_halo import tensors
import time
conn = psycopg.connect(sys.argv[1])
# Write the tensor, then hold the transaction open forever, as a process killed mid-upload would.
with conn.transaction():
    tensors.put(conn, np.zeros(4_000_000, dtype=np.float32), "killed-upload", chunk_bytes=1 << 20)
    print("written", flush=True)
    time.sleep(600)
"""


def test_killed_upload_leaves_nothing_visible(test_server, built_copy) -> None:
    url = test_server.url(built_copy)
    uploader = subprocess.Popen([sys.executable, "-c", UPLOADER, url], stdout=subprocess.PIPE, text=True)
    try:
        assert uploader.stdout.readline().strip() == "written"
        with psycopg.connect(url) as conn:  # another session never sees the uncommitted tensor
            assert conn.execute("select count(*) from tensor_metadata where tensor_name = 'killed-upload'").fetchone()[0] == 0
        os.kill(uploader.pid, signal.SIGKILL)
        uploader.wait()
        time.sleep(0.5)
        with psycopg.connect(url) as conn:
            assert conn.execute("select count(*) from tensor_metadata where tensor_name = 'killed-upload'").fetchone()[0] == 0
            assert conn.execute("select count(*) from tensor_data").fetchone()[0] == 0
    finally:
        uploader.kill()
