"""What a model's config.json says about its shape, whatever the family's key names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from arc_halo.errors import ModelImportError
from arc_halo.hf.validation import check_size

# Config keys differ by family (BERT, GPT-2, T5, Llama ...): the first one present wins.
_CONFIG_KEYS = {
    "hidden_size": ("hidden_size", "n_embd", "d_model", "dim"),
    "num_layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "num_attention_heads": ("num_attention_heads", "n_head", "num_heads", "n_heads"),
    "intermediate_size": ("intermediate_size", "n_inner", "d_ff", "ffn_dim", "hidden_dim"),
    "max_sequence_length": ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "seq_length"),
    "activation": ("hidden_act", "activation_function", "hidden_activation", "feed_forward_proj"),
    "dropout": ("hidden_dropout_prob", "resid_pdrop", "dropout", "hidden_dropout", "dropout_rate"),
}
_ACTIVATIONS = {"gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swiglu", "geglu", "tanh", "identity"}
_DECODER_TYPES = {"gpt2", "gpt_neo", "gpt_neox", "gptj", "llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma",
                  "gemma2", "phi", "phi3", "falcon", "opt", "bloom", "mpt", "starcoder2", "olmo"}


def _first(config: dict[str, Any], key: str, default: Any = None) -> Any:
    for name in _CONFIG_KEYS[key]:
        if config.get(name) is not None:
            return config[name]
    return default


def architecture(config: dict[str, Any]) -> str:
    if config.get("is_encoder_decoder"):
        return "encoder_decoder"
    names = " ".join(config.get("architectures") or [])
    if re.search(r"(ForCausalLM|LMHeadModel)\b", names) or config.get("model_type") in _DECODER_TYPES:
        return "decoder_only"
    return "encoder_only"


@dataclass(frozen=True)
class ModelShape:
    """What the models, transformer_layers and attention_heads rows need, derived from a config."""

    architecture: str
    model_type: str | None
    vocab_size: int
    hidden_size: int
    encoder_layers: int
    decoder_layers: int
    heads: int
    kv_heads: int | None
    head_dim: int
    intermediate_size: int
    max_sequence_length: int
    activation: str | None
    normalization: str
    dropout: float
    # Which derivable sizes config.json states (head_dim, intermediate_size); the others are defaults that
    # the weights may correct (validation.check_weights_match).
    stated: frozenset[str] = frozenset()

    @property
    def num_layers(self) -> int:
        return self.encoder_layers + self.decoder_layers

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelShape:
        if not isinstance(config, dict):
            raise ModelImportError(f"a model config is a dict (config.json's object), got {type(config).__name__}")
        arch = architecture(config)
        required = {key: _first(config, key) for key in ("hidden_size", "num_layers", "num_attention_heads")}
        required["vocab_size"] = config.get("vocab_size")
        required["max_sequence_length"] = _first(config, "max_sequence_length")
        if arch == "encoder_decoder" and required["max_sequence_length"] is None:
            required["max_sequence_length"] = config.get("n_positions", 512)  # T5 has relative positions only
        missing = [key for key, value in required.items() if value is None]
        if missing:
            raise ModelImportError(f"config.json lacks {', '.join(missing)} (or its family's name for it)")
        for key, value in required.items():
            required[key] = check_size(key, value)
        hidden, heads = required["hidden_size"], required["num_attention_heads"]
        if hidden % heads:
            raise ModelImportError(f"config.json: {heads} attention heads do not divide hidden_size {hidden}; "
                                   "fix num_attention_heads or hidden_size")
        intermediate = _first(config, "intermediate_size")
        if intermediate is not None:
            check_size("intermediate_size", intermediate)
        kv_heads = config.get("num_key_value_heads")
        if kv_heads is not None:
            kv_heads = check_size("num_key_value_heads", kv_heads)
            if heads % kv_heads:  # also what the models_kv_heads_check constraint would refuse
                raise ModelImportError(
                    f"config.json: num_key_value_heads {kv_heads} must divide num_attention_heads {heads} (each "
                    "key/value head serves a whole group of query heads); fix num_key_value_heads or num_attention_heads")
        head_dim = config.get("head_dim") or config.get("d_kv")
        if head_dim is not None:
            head_dim = check_size("head_dim", head_dim)
        dropout = _first(config, "dropout", 0.0)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ModelImportError(f"config.json: dropout {dropout!r} must be a number from 0 to below 1; fix "
                                   f"{next(key for key in _CONFIG_KEYS['dropout'] if config.get(key) is not None)}")
        activation = str(_first(config, "activation") or "").removeprefix("gated-") or None
        return cls(
            architecture=arch,
            model_type=config.get("model_type"),
            vocab_size=int(required["vocab_size"]),
            hidden_size=hidden,
            encoder_layers=int(required["num_layers"]),
            decoder_layers=int(config.get("num_decoder_layers") or 0) if arch == "encoder_decoder" else 0,
            heads=heads,
            kv_heads=kv_heads,
            head_dim=head_dim or hidden // heads,
            intermediate_size=int(intermediate or 4 * hidden),
            max_sequence_length=int(required["max_sequence_length"]),
            activation=activation if activation in _ACTIVATIONS else None,
            normalization="rms_norm" if "rms_norm_eps" in config or config.get("model_type") == "t5" else "layer_norm",
            dropout=float(dropout),
            stated=frozenset(key for key, value in (("head_dim", head_dim), ("intermediate_size", intermediate))
                             if value is not None),
        )

    def stack(self, layer_index: int) -> str:
        """Which stack a block belongs to: encoder-only and encoder-decoder models number encoder blocks first."""
        if self.architecture == "decoder_only" or layer_index >= self.encoder_layers:
            return "decoder"
        return "encoder"

    def attention_type(self, layer_index: int) -> str:
        if self.architecture == "encoder_only" or (self.decoder_layers and layer_index < self.encoder_layers):
            return "self"
        if self.kv_heads == 1 and self.heads > 1:
            return "multi_query"
        if self.kv_heads and self.kv_heads < self.heads:
            return "grouped_query"
        return "causal_self"
