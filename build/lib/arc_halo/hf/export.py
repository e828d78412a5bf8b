"""Export a stored model's tensors to one safetensors file, bit for bit."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
from safetensors.numpy import save_file

from arc_halo import tensors
from arc_halo.errors import NotFoundError
from arc_halo.hf.progress import progress_bar


def export_model(conn: psycopg.Connection, model: uuid.UUID | str, path: str | Path, progress: bool = False) -> Path:
    """Write every stored tensor of `model` (id or name) to one safetensors file; returns its path."""
    rows = conn.execute(
        f"""select model_weights.parameter_name, model_weights.tensor_id, tensor_metadata.byte_size
           from model_weights join tensor_metadata using (tensor_id)
           where model_weights.model_id = {tensors.MODEL_BY_ID_OR_NAME}
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(arrays, str(path), metadata={"format": "pt"})
    return path
