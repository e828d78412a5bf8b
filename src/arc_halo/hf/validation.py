"""Checks of a model directory before anything is written: readable JSON objects, safetensors files whose
headers parse, sizes that are whole, positive and plausible (agreement.py checks the config against the
weights). Each failure is a ModelImportError naming the file or the mismatch; a database constraint that
refuses a row anyway is translated into what to fix (constraint_fix)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from safetensors import safe_open

from arc_halo.errors import InvalidInputError, ModelImportError, first_line
from arc_halo.validation import storable_text

MAX_NAME_LENGTH = 200  # models_model_name_check
MAX_VERSION_LENGTH = 64
# Far beyond any published model; a larger value is a typo or a corrupted config.
SIZE_LIMITS = {"vocab_size": 10_000_000, "hidden_size": 1 << 17, "num_layers": 10_000, "num_attention_heads": 10_000,
               "intermediate_size": 1 << 20, "max_sequence_length": 1 << 27, "num_key_value_heads": 10_000,
               "head_dim": 1 << 16}


def read_json_object(path: Path) -> dict[str, Any]:
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
        raise ModelImportError(f"{path} is not a readable safetensors file ({first_line(exc)}); re-download it") from None


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


class ShapeSizes(Protocol):
    """The sizes of a hf.config.ModelShape that the constraint messages name (that module imports this one)."""

    @property
    def heads(self) -> int: ...
    @property
    def kv_heads(self) -> int | None: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def head_dim(self) -> int: ...
    @property
    def dropout(self) -> float: ...


# What to fix when the database refuses an imported row by one of these constraints. The checks above refuse
# these configs first; this covers a schema whose constraints are stricter than those checks.
_CONSTRAINT_FIXES: dict[str, Callable[[ShapeSizes], str]] = {
    "models_kv_heads_check": lambda shape: (
        f"num_key_value_heads {shape.kv_heads} must divide num_attention_heads {shape.heads} (each key/value head "
        "serves a whole group of query heads); fix num_key_value_heads or num_attention_heads"),
    "models_hidden_size_heads_check": lambda shape: (
        f"num_attention_heads {shape.heads} must divide hidden_size {shape.hidden_size}; fix num_attention_heads "
        "or hidden_size"),
    "models_num_key_value_heads_check": lambda shape: (
        f"num_key_value_heads {shape.kv_heads} must be at least 1; fix num_key_value_heads"),
    "transformer_layers_dropout_check": lambda shape: (
        f"dropout {shape.dropout} must be from 0 to below 1; fix the config's dropout"),
    "attention_heads_head_dim_check": lambda shape: f"head_dim {shape.head_dim} must be at least 1; fix head_dim",
}


def constraint_fix(exc: Exception, shape: ShapeSizes) -> str | None:
    """'config.json: ...' saying what to fix, for a constraint violation on a row the import writes (the
    psycopg error, or the ArcHaloError the registry raised for it)."""
    diag = getattr(exc, "diag", None) or getattr(exc.__cause__, "diag", None)
    constraint = getattr(diag, "constraint_name", None)
    fix = _CONSTRAINT_FIXES.get(constraint or "")
    if fix is None:
        return None
    return f"config.json: {fix(shape)} (the database refused it by constraint {constraint}; nothing was written)"
