"""A Hugging Face model directory on disk: config.json and its safetensors weights (one file or shards)."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open

from arc_halo import validation
from arc_halo.errors import ModelImportError
from arc_halo.hf.validation import read_json_object, safetensors_names

SINGLE_FILE = "model.safetensors"
HEADER_LENGTH = struct.Struct("<Q")  # a safetensors file starts with its JSON header's length in bytes
SHARD_INDEX = "model.safetensors.index.json"


@dataclass(frozen=True)
class ModelSource:
    directory: Path
    config: dict[str, Any]
    shards: dict[str, Path]  # tensor name -> file

    @classmethod
    def open(cls, directory: str | Path) -> ModelSource:
        directory = validation.path("directory", directory)
        config_path = directory / "config.json"
        if not config_path.is_file():
            raise ModelImportError(f"{directory}: no config.json; point at a Hugging Face model directory")
        config = read_json_object(config_path)
        if (directory / SHARD_INDEX).is_file():
            weight_map = read_json_object(directory / SHARD_INDEX).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map or not all(
                    isinstance(file, str) and "/" not in file for file in weight_map.values()):
                raise ModelImportError(f"{directory / SHARD_INDEX}: weight_map must map tensor names to shard file names")
            shards = {name: directory / file for name, file in weight_map.items()}
            missing = sorted({str(path.name) for path in shards.values() if not path.is_file()})
            if missing:
                raise ModelImportError(f"{directory}: shard files listed in {SHARD_INDEX} are missing: {', '.join(missing)}")
            for path in set(shards.values()):
                safetensors_names(path)  # a truncated shard or a malformed header is refused before any write
        elif (directory / SINGLE_FILE).is_file():
            shards = {name: directory / SINGLE_FILE for name in safetensors_names(directory / SINGLE_FILE)}
        else:
            raise ModelImportError(f"{directory}: neither {SINGLE_FILE} nor {SHARD_INDEX}; only safetensors weights are imported")
        if not shards:
            raise ModelImportError(f"{directory}: the safetensors weights hold no tensors; point at the directory of "
                                   "a saved model")
        return cls(directory, config, dict(sorted(shards.items())))

    def tensors(self) -> Iterator[tuple[str, np.ndarray]]:
        """(name, array) for every tensor, shard by shard, one shard open at a time."""
        by_file: dict[Path, list[str]] = {}
        for name, path in self.shards.items():
            by_file.setdefault(path, []).append(name)
        for path, names in sorted(by_file.items()):
            with safe_open(path, framework="np") as handle:
                for name in names:
                    yield name, handle.get_tensor(name)

    def safetensors_metadata(self) -> dict[str, Any]:
        """What export needs to give the input back (models.safetensors_metadata): the `__metadata__` pairs
        in file order (None when no file has any; shards: the first one's keys, then the others' new keys),
        and for a single file its JSON header as written, from which the same bytes can be laid out again."""
        files = sorted(set(self.shards.values()))
        pairs: list[list[str]] | None = None
        for path in files:
            header = json.loads(read_header(path))  # checked by safetensors_names when the source was opened
            metadata = header.get("__metadata__")
            if isinstance(metadata, dict):
                pairs = pairs or []
                known = {key for key, _ in pairs}
                pairs += [[key, value] for key, value in metadata.items() if key not in known]
        result: dict[str, Any] = {"metadata": pairs}
        if len(files) == 1:
            text = read_header(files[0])
            if "\x00" not in text:  # jsonb cannot hold NUL; such a header is exported in the canonical layout
                result["header"] = text
        return result

    def tensor_bytes(self) -> int:
        """Size of the weight files: the progress bars' total (each file's small JSON header included)."""
        return sum(path.stat().st_size for path in set(self.shards.values()))

    def default_name(self) -> str:
        """The directory's name, or its parent's when the directory has a generic name (package/model/)."""
        directory = self.directory.resolve()
        return directory.parent.name if directory.name in ("model", "weights", "checkpoint") else directory.name


def read_header(path: Path) -> str:
    """A safetensors file's JSON header as written, trailing padding included."""
    with path.open("rb") as handle:
        (length,) = HEADER_LENGTH.unpack(handle.read(HEADER_LENGTH.size))
        return handle.read(length).decode("utf-8")
