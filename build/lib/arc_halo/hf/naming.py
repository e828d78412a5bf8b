"""What a parameter's name says: its transformer block, its kind, and whether it is an embedding table."""

from __future__ import annotations

import re

import numpy as np

from arc_halo.hf.config import ModelShape

# A block's parameters carry its index after one of these path parts: encoder.layer.3., h.3., model.layers.3.
_LAYER_INDEX = re.compile(r"(?:^|\.)(?:layer|layers|h|block|blocks)\.(\d+)\.")
# State saved beside the weights that training never changes; not parameters.
_BUFFER_NAMES = {"position_ids", "token_type_ids", "inv_freq", "masked_bias"}
EMBEDDING_TABLES = {
    "token": re.compile(r"(?:^|\.)(?:word_embeddings|wte|embed_tokens|shared|tok_embeddings)\.weight$"),
    "position": re.compile(r"(?:^|\.)(?:position_embeddings|wpe|embed_positions)\.weight$"),
    "segment": re.compile(r"(?:^|\.)token_type_embeddings\.weight$"),
}


def layer_index(name: str, shape: ModelShape) -> int | None:
    """The transformer block a parameter belongs to (decoder blocks numbered after the encoder's)."""
    match = _LAYER_INDEX.search(name)
    if match is None:
        return None
    index = int(match.group(1))
    if shape.decoder_layers and (name.startswith("decoder.") or ".decoder." in name):
        index += shape.encoder_layers
    return index


def parameter_kind(name: str, array: np.ndarray) -> str:
    leaf = name.rsplit(".", 1)[-1]
    # Integer and boolean tensors are never trained; GPT-2's 4-d attn.bias is its causal mask.
    if leaf in _BUFFER_NAMES or array.dtype.kind in "iub" or (leaf == "bias" and array.ndim == 4):
        return "buffer"
    lowered = name.lower()
    if "norm" in lowered or re.search(r"(?:^|\.)ln_?\w*\.", lowered):
        return "norm"
    module = lowered.rsplit(".", 2)[-2] if "." in lowered else lowered  # embed_out.weight -> embed_out
    if any(pattern.search(name) for pattern in EMBEDDING_TABLES.values()) or "embed" in module:
        return "embedding"
    if leaf == "bias":
        return "bias"
    if leaf == "weight":
        return "weight"
    return "other"


def embedding_type(name: str, array: np.ndarray, shape: ModelShape) -> str | None:
    """'token', 'position' or 'segment' when the parameter is such a table of hidden-size rows."""
    if array.ndim != 2 or array.shape[1] != shape.hidden_size:
        return None
    return next((kind for kind, pattern in EMBEDDING_TABLES.items() if pattern.search(name)), None)
