"""Issue 10 §4: a tensor's integrity check covers its dtype and shape as well as its bytes, names surplus
and missing chunks for what they are, and an unknown id is a not-found error."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from arc_halo import tensors
from arc_halo.errors import IntegrityError, NotFoundError


@pytest.mark.parametrize(
    ("column", "value"),
    [("shape", [8, 2]), ("shape", [16]), ("dtype", "int32"), ("dtype", "uint32")],
    ids=["same-size-reshape", "flattened", "same-width-dtype", "unsigned"],
)
def test_an_edited_dtype_or_shape_is_detected_on_read(db, column, value) -> None:
    tensor_id = tensors.put(db, np.arange(16, dtype=np.float32).reshape(2, 8), "edited")
    db.execute(f"update tensor_metadata set {column} = %s where tensor_id = %s", (value, tensor_id))
    with pytest.raises(tensors.TensorIntegrityError, match=rf"tensor {tensor_id} \(edited\): dtype .* or shape .* is "
                                                           r"not what was written"):
        tensors.get(db, tensor_id)


def test_a_surplus_chunk_is_reported_as_surplus(db) -> None:
    tensor_id = tensors.put(db, np.arange(64, dtype=np.float64), "padded", chunk_bytes=128)  # 4 chunks
    db.execute("insert into tensor_data (tensor_id, chunk_index, chunk_data, chunk_sha256)"
               " values (%s, 4, '\\x00', repeat('0', 64))", (tensor_id,))
    with pytest.raises(IntegrityError, match=r"surplus chunk 4 \(the tensor has 4 chunks\)"):
        tensors.get(db, tensor_id)


def test_a_missing_last_chunk_is_reported_as_missing(db) -> None:
    tensor_id = tensors.put(db, np.arange(64, dtype=np.float64), "short", chunk_bytes=128)
    db.execute("delete from tensor_data where tensor_id = %s and chunk_index = 3", (tensor_id,))
    with pytest.raises(IntegrityError, match="chunk 3 is missing"):
        tensors.get(db, tensor_id)


def test_tensors_written_before_the_layout_checksum_still_read(db) -> None:
    array = np.arange(6, dtype=np.int16).reshape(3, 2)
    tensor_id = tensors.put(db, array, "older")
    db.execute("update tensor_metadata set layout_sha256 = null where tensor_id = %s", (tensor_id,))
    assert np.array_equal(tensors.get(db, tensor_id), array)


def test_unknown_tensor_and_parameter_are_not_found(db) -> None:
    unknown = uuid.uuid4()
    with pytest.raises(NotFoundError, match=f"no tensor {unknown}"):
        tensors.get(db, unknown)
    with pytest.raises(NotFoundError, match="has no parameter 'nope'"):
        tensors.get_parameter(db, "no-such-model", "nope")
