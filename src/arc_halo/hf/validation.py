"""Checks of a model directory before anything is written: readable JSON objects, safetensors files whose
headers parse, sizes that are whole, positive and plausible, and a config that agrees with its weights.
Each failure is a ModelImportError naming the file or the mismatch."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from safetensors import safe_open

from arc_halo.errors import InvalidInputError
from arc_halo.hf.errors import ModelImportError
from arc_halo.validation import storable_text

MAX_NAME_LENGTH = 200  # models_model_name_check
MAX_VERSION_LENGTH = 64
# Far beyond any published model; a larger value is a typo or a corrupted config.
SIZE_LIMITS = {"vocab_size": 10_000_000, "hidden_size": 1 << 17, "num_layers": 10_000, "num_attention_heads": 10_000,
               "intermediate_size": 1 << 20, "max_sequence_length": 1 << 27}


def read_json_object(path: Path) -> dict:
    """A JSON file that must hold an object (config.json, the shard index)."""
    try:
        value = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelImportError(f"{path} is not valid JSON ({exc}); re-download or fix the file") from None
    if not isinstance(value, dict):
        raise ModelImportError(f"{path} holds a JSON {type(value).__name__}, not an object of settings")
    return value


def safetensors_names(path: Path) -> list[str]:
    """The tensor names in a safetensors file, after the library checked its header and that the data is
    all there (a truncated file or a malformed header fails here, before any row is written)."""
    try:
        with safe_open(path, framework="np") as handle:
            return list(handle.keys())
    except Exception as exc:  # safetensors raises SafetensorError (an Exception subclass) or OSError
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelImportError(f"{path} is not a readable safetensors file ({reason}); re-download it") from None


def tensor_shapes(paths: dict[str, Path]) -> dict[str, list[int]]:
    """Each tensor's shape from the file headers, without reading the data."""
    shapes: dict[str, list[int]] = {}
    by_file: dict[Path, list[str]] = {}
    for name, path in paths.items():
        by_file.setdefault(path, []).append(name)
    for path, names in by_file.items():
        try:
            with safe_open(path, framework="np") as handle:
                present = set(handle.keys())
                for name in names:
                    if name not in present:
                        raise ModelImportError(f"{path} has no tensor {name!r}, which the shard index places there")
                    shapes[name] = list(handle.get_slice(name).get_shape())
        except ModelImportError:
            raise
        except Exception as exc:  # noqa: BLE001 - SafetensorError and OSError alike mean an unreadable file
            raise ModelImportError(f"{path} is not a readable safetensors file ({exc}); re-download it") from None
    return shapes


def check_size(key: str, value: object) -> int:
    """A config size: a whole number, at least 1, below SIZE_LIMITS."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not value.is_integer()):
        raise ModelImportError(f"config.json: {key} must be a whole number, got {value!r}")
    if not 1 <= value <= SIZE_LIMITS[key]:
        raise ModelImportError(f"config.json: {key} = {value} is out of range (1 to {SIZE_LIMITS[key]:,})")
    return int(value)


def check_registration(name: str, version: str) -> None:
    for label, value, limit in (("model name", name, MAX_NAME_LENGTH), ("version", version, MAX_VERSION_LENGTH)):
        if not isinstance(value, str) or not value.strip():
            raise ModelImportError(f"{label} must not be empty")
        if len(value) > limit:
            raise ModelImportError(f"{label} is {len(value)} characters long; the limit is {limit}")
        if any(ord(character) < 32 for character in value):
            raise ModelImportError(f"{label} {value[:40]!r} contains control characters")
        try:
            storable_text(label, value)  # a lone surrogate
        except InvalidInputError as exc:
            raise ModelImportError(str(exc)) from None
    if _looks_like_uuid(name):
        raise ModelImportError(f"model name {name!r} has the form of a model id; lookups take a name or an id, so "
                               "a name cannot be one: choose another --name")


def _looks_like_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def check_weights_match(shape, layer_indexes: set[int], embedding_widths: dict[str, int]) -> None:
    """Refuse a config whose layer count or width disagrees with the weights: their parameters would not be
    mapped to layers, or the embedding tables would not be stored as vectors of the model's width."""
    if layer_indexes:
        found = max(layer_indexes) + 1
        if found != shape.num_layers:
            raise ModelImportError(f"config.json says {shape.num_layers} layers but the weights have blocks 0 to "
                                   f"{found - 1} ({found} layers); fix num_hidden_layers or use the matching weights")
    for parameter, width in embedding_widths.items():
        if width != shape.hidden_size:
            raise ModelImportError(f"config.json says hidden_size {shape.hidden_size} but the embedding table "
                                   f"{parameter} is {width} wide; fix hidden_size or use the matching weights")
