"""Export a stored model's tensors to one safetensors file, bit for bit."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
from safetensors.numpy import save_file

from arc_halo import tensors
from arc_halo.errors import InvalidInputError, NotFoundError
from arc_halo.hf.progress import progress_bar


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


def export_model(conn: psycopg.Connection, model: uuid.UUID | str, path: str | Path, progress: bool = False) -> Path:
    """Write every stored tensor of `model` (id or name) to one safetensors file; returns its path."""
    path = writable_file(Path(path))
    rows = conn.execute(
        f"""select model_weights.parameter_name, model_weights.tensor_id, tensor_metadata.byte_size
           from model_weights join tensor_metadata using (tensor_id)
           where model_weights.model_id = {tensors.MODEL_BY_ID_OR_NAME}
             and model_weights.tenant_id = {tensors.CURRENT_TENANT}
           order by model_weights.parameter_name""",
        (str(model), str(model)),
    ).fetchall()
    if not rows:
        raise NotFoundError(f"no stored weights for model {model}; `arc-halo model list` shows what is registered")
    arrays = {}
    with progress_bar(progress, f"exporting {model}", sum(row[2] for row in rows)) as advance:
        for parameter, tensor_id, size in rows:
            arrays[parameter] = tensors.get(conn, tensor_id)
            advance(size)
    save_file(arrays, str(path), metadata={"format": "pt"})
    return path
