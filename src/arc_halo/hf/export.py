"""Export a stored model's tensors to one safetensors file, bit for bit, with the input's `__metadata__`.

A model imported from one safetensors file is written back byte-identical to it: its header, kept at
import (models.safetensors_metadata), is written as it was, followed by the tensors in its order, as long
as it still describes the stored tensors (names, dtypes, shapes and sizes). Otherwise (shards, or tensors
changed since) the file gets the safetensors library's layout and the input's metadata.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np
import psycopg
from safetensors.numpy import save_file

from arc_halo import tenancy, tensors, validation
from arc_halo.dtypes import dtype_name
from arc_halo.errors import InvalidInputError, NotFoundError, public_call
from arc_halo.lookups import MODEL_BY_ID_OR_NAME
from arc_halo.hf.progress import progress_bar
from arc_halo.hf.source import HEADER_LENGTH

# tensor_dtypes names -> the dtype codes of safetensors headers.
SAFETENSORS_DTYPES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
                      "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "int64": "I64", "int32": "I32",
                      "int16": "I16", "int8": "I8", "uint64": "U64", "uint32": "U32", "uint16": "U16", "uint8": "U8",
                      "bool": "BOOL", "complex64": "C64"}
# What export wrote before models kept their input's metadata (and writes for models stored without it).
LEGACY_METADATA = {"format": "pt"}


def writable_file(path: Path) -> Path:
    """Check before any tensor is read that `path` is a .safetensors file that can be written."""
    if path.suffix != ".safetensors":
        raise InvalidInputError(f"{path}: the export file name must end in .safetensors")
    if path.is_dir():
        raise InvalidInputError(f"{path} is a directory; give the path of the .safetensors file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create the directory {path.parent} ({exc.strerror}); choose another path") from None
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InvalidInputError(f"cannot write {path}: permission denied; choose another path")
    return path


@public_call
def export_model(conn: psycopg.Connection, model: uuid.UUID | str, path: str | Path, progress: bool = False) -> Path:
    """Write every stored tensor of `model` (id or name) to one safetensors file; returns its path."""
    path = writable_file(validation.path("path", path))
    rows = conn.execute(
        f"""select model_weights.parameter_name, model_weights.tensor_id, tensor_metadata.byte_size
           from model_weights join tensor_metadata using (tensor_id)
           where model_weights.model_id = {MODEL_BY_ID_OR_NAME}
             and model_weights.tenant_id = {tenancy.CURRENT_TENANT}
           order by model_weights.parameter_name""",
        (str(model), str(model)),
    ).fetchall()
    if not rows:
        raise NotFoundError(f"no stored weights for model {model}; `arc-halo model list` shows what is registered")
    model_row = conn.execute(f"select safetensors_metadata from models where model_id = {MODEL_BY_ID_OR_NAME}",
                             (str(model), str(model))).fetchone()
    if model_row is None:  # deleted since its weights were read
        raise NotFoundError(f"no model {model}; `arc-halo model list` shows what is registered")
    kept = model_row[0]
    arrays = {}
    with progress_bar(progress, f"exporting {model}", sum(row[2] for row in rows)) as advance:
        for parameter, tensor_id, size in rows:
            arrays[parameter] = tensors.get(conn, tensor_id)
            advance(size)
    order = file_order(kept.get("header"), arrays) if kept else None
    if order is not None:
        _write_with_header(path, kept["header"], order, arrays)
    else:
        pairs = kept.get("metadata") if kept else None
        metadata = LEGACY_METADATA if kept is None else (dict(pairs) if pairs is not None else None)
        save_file(arrays, str(path), metadata=metadata)
    return path


def file_order(header_text: str | None, arrays: dict[str, np.ndarray]) -> list[str] | None:
    """The tensors' order in the file `header_text` describes, when it describes exactly `arrays` laid end
    to end; None otherwise."""
    if not header_text:
        return None
    try:
        header = json.loads(header_text)
    except ValueError:
        return None
    entries = {name: entry for name, entry in header.items() if name != "__metadata__"}
    if set(entries) != set(arrays):
        return None
    try:
        order = sorted(entries, key=lambda name: entries[name]["data_offsets"][0])
        position = 0
        for name in order:
            entry, array = entries[name], arrays[name]
            begin, end = entry["data_offsets"]
            if (begin != position or end - begin != array.nbytes or list(entry["shape"]) != list(array.shape)
                    or entry["dtype"] != SAFETENSORS_DTYPES.get(dtype_name(array.dtype))):
                return None
            position = end
    except (KeyError, TypeError, ValueError):
        return None
    return order


def _write_with_header(path: Path, header_text: str, order: list[str], arrays: dict[str, np.ndarray]) -> None:
    encoded = header_text.encode("utf-8")
    with path.open("wb") as out:
        out.write(HEADER_LENGTH.pack(len(encoded)))
        out.write(encoded)
        for name in order:
            # As bytes: a buffer of bfloat16 or float8 (ml_dtypes) cannot be handed to write() directly.
            out.write(np.ascontiguousarray(arrays[name]).reshape(-1).view(np.uint8).data)
