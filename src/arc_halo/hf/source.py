"""A Hugging Face model directory on disk: config.json and its safetensors weights (one file or shards)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import safe_open

from arc_halo import validation
from arc_halo.hf.errors import ModelImportError
from arc_halo.hf.validation import read_json_object, safetensors_names

SINGLE_FILE = "model.safetensors"
SHARD_INDEX = "model.safetensors.index.json"


@dataclass(frozen=True)
class ModelSource:
    directory: Path
    config: dict
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

    def tensor_bytes(self) -> int:
        """Size of the weight files: the progress bars' total (each file's small JSON header included)."""
        return sum(path.stat().st_size for path in set(self.shards.values()))

    def default_name(self) -> str:
        """The directory's name, or its parent's when the directory has a generic name (package/model/)."""
        directory = self.directory.resolve()
        return directory.parent.name if directory.name in ("model", "weights", "checkpoint") else directory.name
