"""The model's content hash: the config and each tensor's name, dtype, shape and SHA-256.

Each tensor is hashed once, here; the import hands the digests on to the tensor store instead of
hashing the bytes again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from arc_halo import tensors
from arc_halo.dtypes import dtype_name
from arc_halo.hf.progress import progress_bar
from arc_halo.hf.source import ModelSource


@dataclass(frozen=True)
class ContentHash:
    model_sha256: str
    tensor_sha256: dict[str, str]  # parameter name -> the SHA-256 the tensor store records for its bytes


def content_hash(source: ModelSource, show_progress: bool = False) -> ContentHash:
    entries, digests = [], {}
    with progress_bar(show_progress, "hashing", source.tensor_bytes()) as advance:
        for name, array in source.tensors():
            digests[name] = tensors.content_digest(array)
            entries.append([name, dtype_name(array.dtype), list(array.shape), digests[name]])
            advance(array.nbytes)
    canonical = json.dumps({"config": source.config, "tensors": entries}, sort_keys=True, separators=(",", ":"))
    return ContentHash(hashlib.sha256(canonical.encode()).hexdigest(), digests)
