"""Config against weights, before anything is written: the layer count, the widths, the attention heads and
their width (from the q/k/v projections), the key/value heads, vocab_size (the token table's rows) and
intermediate_size (the MLP's shapes). A disagreement is a ModelImportError naming the config field, what
config.json says and what the weights say. Only tensor headers are read.

Sizes the config leaves to a default (intermediate_size where the family's key is absent) are taken from
the weights instead of refused."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from arc_halo.hf.config import ModelShape
from arc_halo.errors import ModelImportError
from arc_halo.hf.naming import EMBEDDING_TABLES

# Separate self-attention projections, [out_features, in_features] (nn.Linear): Llama/Qwen/Gemma/Mistral,
# BERT, T5, Llama's original names. Fused projections (GPT-2 c_attn, NeoX query_key_value) are not split here.
_PROJECTIONS = {
    kind: re.compile(rf"(?:^|\.)(?:self_attn\.{kind}_proj|attn\.{kind}_proj|attention\.self\.{long}|SelfAttention\."
                     rf"{kind}|attention\.w{kind})\.weight$")
    for kind, long in (("q", "query"), ("k", "key"), ("v", "value"))
}
# MLP matrices whose rows are intermediate_size (nn.Linear up-projections) ...
_MLP_ROWS = re.compile(r"(?:^|\.)(?:mlp\.(?:gate_proj|up_proj|dense_h_to_4h|fc_in)|intermediate\.dense|fc1|"
                       r"DenseReluDense\.wi(?:_0|_1)?|feed_forward\.w[13])\.weight$")
# ... whose columns are (down-projections), and GPT-2's Conv1D, stored transposed ([in, out]).
_MLP_COLUMNS = re.compile(r"(?:^|\.)(?:mlp\.(?:down_proj|dense_4h_to_h|fc_out|c_fc)|layer\.\d+\.output\.dense|fc2|"
                          r"DenseReluDense\.wo|feed_forward\.w2)\.weight$")
_GPT2_MLP_ROWS = re.compile(r"(?:^|\.)mlp\.c_proj\.weight$")
# Output heads with one row per token.
_LM_HEADS = re.compile(r"(?:^|\.)(?:lm_head|embed_out)\.weight$")


# Multi-head latent attention (DeepSeek-V2/V3) sizes its projections by these keys, not by the head width.
_LATENT_ATTENTION_KEYS = ("kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")


def check_against_weights(shape: ModelShape, shapes: dict[str, list[int]], layer_of: Callable[[str], int | None],
                          config: dict[str, Any] | None = None) -> ModelShape:
    """The shape to store: `shape` (from `config`) checked against the tensor `shapes` (name -> dims), with
    intermediate_size from the weights when config.json does not state it."""
    _check_layers(shape, {index for name in shapes if (index := layer_of(name)) is not None})
    _check_tables(shape, shapes)
    if not any(key in (config or {}) for key in _LATENT_ATTENTION_KEYS):
        _check_attention(shape, shapes)
    return _with_intermediate(shape, shapes)


def _check_layers(shape: ModelShape, layer_indexes: set[int]) -> None:
    if layer_indexes:
        found = max(layer_indexes) + 1
        if found != shape.num_layers:
            raise ModelImportError(f"config.json says {shape.num_layers} layers but the weights have blocks 0 to "
                                   f"{found - 1} ({found} layers); fix num_hidden_layers or use the matching weights")


def _check_tables(shape: ModelShape, shapes: dict[str, list[int]]) -> None:
    for name, dims in shapes.items():
        kind = next((kind for kind, pattern in EMBEDDING_TABLES.items() if pattern.search(name)), None)
        if kind is None or len(dims) != 2:
            continue
        if dims[1] != shape.hidden_size:
            raise ModelImportError(f"config.json says hidden_size {shape.hidden_size} but the embedding table "
                                   f"{name} is {dims[1]} wide; fix hidden_size or use the matching weights")
        if kind == "token" and dims[0] != shape.vocab_size:
            raise ModelImportError(f"config.json says vocab_size {shape.vocab_size} but the token embedding table "
                                   f"{name} has {dims[0]} rows; fix vocab_size or use the matching weights")
    for name, dims in shapes.items():
        if _LM_HEADS.search(name) and len(dims) == 2 and dims[0] != shape.vocab_size:
            raise ModelImportError(f"config.json says vocab_size {shape.vocab_size} but the output head {name} has "
                                   f"{dims[0]} rows; fix vocab_size or use the matching weights")


def _rows(shapes: dict[str, list[int]], kind: str) -> list[tuple[str, int]]:
    return [(name, dims[0]) for name, dims in sorted(shapes.items())
            if len(dims) == 2 and _PROJECTIONS[kind].search(name)]


def _check_attention(shape: ModelShape, shapes: dict[str, list[int]]) -> None:
    heads, width = shape.heads, shape.head_dim
    kv_heads = shape.kv_heads or heads
    rows = {kind: _rows(shapes, kind) for kind in ("q", "k", "v")}
    expected = {"q": heads * width, "k": kv_heads * width, "v": kv_heads * width}
    wrong = next(((name, count, kind) for kind in ("q", "k", "v") for name, count in rows[kind]
                  if count != expected[kind]), None)
    if wrong is None:
        return
    name, count, kind = wrong
    said_width = f"head_dim {width}" if "head_dim" in shape.stated else f"head width {width} (hidden_size / heads)"
    said_kv = (f"num_key_value_heads {shape.kv_heads}" if shape.kv_heads
               else f"num_key_value_heads (absent: one per attention head, {heads})")
    message = (f"config.json's num_attention_heads {heads}, {said_kv} and {said_width} disagree with the weights: "
               f"{name} has {count} rows, not {expected[kind]}")
    fits = _single_field_fixes(shape, rows["q"][0][1] if rows["q"] else None, rows["k"][0][1] if rows["k"] else None)
    if fits:
        raise ModelImportError(f"{message}; the weights fit {' or '.join(fits)}: fix {'that field' if len(fits) == 1 else 'one of these fields'}")
    raise ModelImportError(f"{message}; fix num_attention_heads, num_key_value_heads or head_dim")


def _single_field_fixes(shape: ModelShape, query: int | None, key: int | None) -> list[str]:
    """Each change of one field (attention heads, key/value heads, head width) after which the q and k
    projections' rows agree with the config; several can fit the shapes, and then all are named."""
    heads, width, hidden = shape.heads, shape.head_dim, shape.hidden_size
    stated_width = "head_dim" in shape.stated
    kv_heads = shape.kv_heads or heads
    fits = []
    if query and query % heads == 0 and query // heads != width and (key is None or key == kv_heads * (query // heads)):
        fits.append(f"head_dim {query // heads} (config.json says {width})" if stated_width else
                    f"head_dim {query // heads} (config.json states none; hidden_size / num_attention_heads is {width})")
    # Other attention heads keep a stated width; an unstated one follows from the key/value heads.
    head_width = width if stated_width else (key // shape.kv_heads if key and shape.kv_heads and key % shape.kv_heads == 0
                                             else None)
    if query and head_width and query % head_width == 0 and query // head_width != heads:
        other = query // head_width
        if (key is None or key == (shape.kv_heads or other) * head_width) and (stated_width or hidden == other * head_width) \
                and (shape.kv_heads is None or other % shape.kv_heads == 0):
            fits.append(f"num_attention_heads {other} of width {head_width} (config.json says {heads})")
    if query == heads * width and key and key % width == 0 and key // width != kv_heads and heads % (key // width) == 0:
        fits.append(f"num_key_value_heads {key // width} (config.json says "
                    f"{shape.kv_heads if shape.kv_heads else f'none, which means {heads}'})")
    return fits


def _intermediate_sizes(shapes: dict[str, list[int]]) -> list[tuple[str, int]]:
    found = []
    for name, dims in sorted(shapes.items()):
        if len(dims) != 2:
            continue
        if _MLP_ROWS.search(name) or _GPT2_MLP_ROWS.search(name):
            found.append((name, dims[0]))
        elif _MLP_COLUMNS.search(name):
            found.append((name, dims[1]))
    return found


def _with_intermediate(shape: ModelShape, shapes: dict[str, list[int]]) -> ModelShape:
    sizes = _intermediate_sizes(shapes)
    if not sizes:
        return shape
    if "intermediate_size" not in shape.stated:
        return dataclasses.replace(shape, intermediate_size=sizes[0][1])
    for name, size in sizes:
        if size != shape.intermediate_size:
            raise ModelImportError(f"config.json says intermediate_size {shape.intermediate_size} but the MLP weight "
                                   f"{name} implies {size}; fix intermediate_size or use the matching weights")
    return shape
