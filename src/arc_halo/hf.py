"""Hugging Face-style model directories in and out of the registry.

Import reads `config.json` and `model.safetensors` (or the shards listed in `model.safetensors.index.json`)
with the safetensors library, and writes in one transaction: the models row, its layers and attention
heads from the config, every tensor with its chunks, model_weights rows mapped to layers, and the token,
position and segment embedding tables as vectors. The model's content_sha256 covers the config and every
tensor's name, dtype, shape and SHA-256: importing the same model again returns the stored one and
writes nothing. Export writes the stored tensors back to one safetensors file, bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from safetensors import safe_open
from safetensors.numpy import save_file

from arc_halo import tensors
from arc_halo.dtypes import dtype_name
from arc_halo.errors import ArcHaloError, InvalidInputError, NotFoundError

SINGLE_FILE = "model.safetensors"
SHARD_INDEX = "model.safetensors.index.json"

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
# A block's parameters carry its index after one of these path parts: encoder.layer.3., h.3., model.layers.3.
_LAYER_INDEX = re.compile(r"(?:^|\.)(?:layer|layers|h|block|blocks)\.(\d+)\.")
# State saved beside the weights that training never changes; not parameters.
_BUFFER_NAMES = {"position_ids", "token_type_ids", "inv_freq", "masked_bias"}
_EMBEDDING_TABLES = {
    "token": re.compile(r"(?:^|\.)(?:word_embeddings|wte|embed_tokens|shared|tok_embeddings)\.weight$"),
    "position": re.compile(r"(?:^|\.)(?:position_embeddings|wpe|embed_positions)\.weight$"),
    "segment": re.compile(r"(?:^|\.)token_type_embeddings\.weight$"),
}


# The tenant a new row gets by default (the tenant_id columns' default expression).
_CURRENT_TENANT = "coalesce(nullif(current_setting('app.tenant_id', true), ''), 'default')"


class ModelImportError(InvalidInputError):
    """The directory is not an importable model; the message says what to fix."""


@dataclass(frozen=True)
class ImportResult:
    model_id: uuid.UUID
    created: bool
    tensor_count: int
    parameter_count: int
    embedding_count: int


@dataclass(frozen=True)
class ModelSource:
    directory: Path
    config: dict
    shards: dict[str, Path]  # tensor name -> file

    @classmethod
    def open(cls, directory: str | Path) -> ModelSource:
        directory = Path(directory)
        config_path = directory / "config.json"
        if not config_path.is_file():
            raise ModelImportError(f"{directory}: no config.json; point at a Hugging Face model directory")
        config = json.loads(config_path.read_text())
        if (directory / SHARD_INDEX).is_file():
            weight_map = json.loads((directory / SHARD_INDEX).read_text()).get("weight_map", {})
            shards = {name: directory / file for name, file in weight_map.items()}
            missing = sorted({str(path.name) for path in shards.values() if not path.is_file()})
            if missing:
                raise ModelImportError(f"{directory}: shard files listed in {SHARD_INDEX} are missing: {', '.join(missing)}")
        elif (directory / SINGLE_FILE).is_file():
            with safe_open(directory / SINGLE_FILE, framework="np") as handle:
                shards = {name: directory / SINGLE_FILE for name in handle.keys()}
        else:
            raise ModelImportError(f"{directory}: neither {SINGLE_FILE} nor {SHARD_INDEX}; only safetensors weights are imported")
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


def _first(config: dict, key: str, default=None):
    for name in _CONFIG_KEYS[key]:
        if config.get(name) is not None:
            return config[name]
    return default


def architecture(config: dict) -> str:
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

    @property
    def num_layers(self) -> int:
        return self.encoder_layers + self.decoder_layers

    @classmethod
    def from_config(cls, config: dict) -> ModelShape:
        arch = architecture(config)
        required = {key: _first(config, key) for key in ("hidden_size", "num_layers", "num_attention_heads")}
        required["vocab_size"] = config.get("vocab_size")
        required["max_sequence_length"] = _first(config, "max_sequence_length")
        if arch == "encoder_decoder" and required["max_sequence_length"] is None:
            required["max_sequence_length"] = config.get("n_positions", 512)  # T5 has relative positions only
        missing = [key for key, value in required.items() if value is None]
        if missing:
            raise ModelImportError(f"config.json lacks {', '.join(missing)} (or its family's name for it)")
        hidden, heads = int(required["hidden_size"]), int(required["num_attention_heads"])
        activation = str(_first(config, "activation") or "").removeprefix("gated-") or None
        return cls(
            architecture=arch,
            model_type=config.get("model_type"),
            vocab_size=int(required["vocab_size"]),
            hidden_size=hidden,
            encoder_layers=int(required["num_layers"]),
            decoder_layers=int(config.get("num_decoder_layers") or 0) if arch == "encoder_decoder" else 0,
            heads=heads,
            kv_heads=int(config["num_key_value_heads"]) if config.get("num_key_value_heads") else None,
            head_dim=int(config.get("head_dim") or config.get("d_kv") or hidden // heads),
            intermediate_size=int(_first(config, "intermediate_size") or 4 * hidden),
            max_sequence_length=int(required["max_sequence_length"]),
            activation=activation if activation in _ACTIVATIONS else None,
            normalization="rms_norm" if "rms_norm_eps" in config or config.get("model_type") == "t5" else "layer_norm",
            dropout=float(_first(config, "dropout", 0.0)),
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
    if any(pattern.search(name) for pattern in _EMBEDDING_TABLES.values()) or "embed" in module:
        return "embedding"
    if leaf == "bias":
        return "bias"
    if leaf == "weight":
        return "weight"
    return "other"


def content_sha256(source: ModelSource, progress: bool = False) -> str:
    """SHA-256 over the config and each tensor's name, dtype, shape and bytes' SHA-256."""
    entries = []
    with _progress(progress, "hashing", source.tensor_bytes()) as advance:
        for name, array in source.tensors():
            entries.append([name, dtype_name(array.dtype), list(array.shape), tensors.content_digest(array)])
            advance(array.nbytes)
    canonical = json.dumps({"config": source.config, "tensors": entries}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _vocabulary(directory: Path, size: int) -> list[str | None]:
    """Token texts by id from tokenizer.json or vocab.txt, where the directory has one."""
    texts: list[str | None] = [None] * size
    tokenizer = directory / "tokenizer.json"
    if tokenizer.is_file():
        vocab = json.loads(tokenizer.read_text()).get("model", {}).get("vocab") or {}
        pairs = vocab.items() if isinstance(vocab, dict) else ((entry[0], index) for index, entry in enumerate(vocab))
        for text, index in pairs:
            if 0 <= index < size:
                texts[index] = text
    elif (directory / "vocab.txt").is_file():
        for index, text in enumerate((directory / "vocab.txt").read_text().splitlines()[:size]):
            texts[index] = text
    return texts


@contextmanager
def _progress(enabled: bool, label: str, total: int):
    if not enabled:
        yield lambda _count: None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda count: bar.advance(task, count)


def import_model(
    conn: psycopg.Connection,
    directory: str | Path,
    name: str | None = None,
    version: str = "1.0.0",
    progress: bool = False,
    store: tensors.BlobStore | None = None,
) -> ImportResult:
    """Register the model in `directory`; a model with the same content already stored is returned as is."""
    source = ModelSource.open(directory)
    shape = ModelShape.from_config(source.config)
    name = name or _default_name(source)
    digest = content_sha256(source, progress)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (digest,))
        existing = conn.execute(
            f"select model_id from models where content_sha256 = %s and tenant_id = {_CURRENT_TENANT}", (digest,),
        ).fetchone()
        if existing:
            return _summary(conn, existing[0], created=False)
        # Names are unique per tenant (models_tenant_name_key), whatever the version.
        clash = conn.execute(
            f"select version from models where model_name = %s and tenant_id = {_CURRENT_TENANT}", (name,),
        ).fetchone()
        if clash:
            raise ModelImportError(
                f"model {name!r} (version {clash[0]}) is already registered with other weights; "
                "import it under another --name"
            )
        model_id = _insert_model(conn, source, shape, name, version, digest)
        layer_ids = _insert_layers(conn, model_id, shape)
        embedding_tables: dict[str, np.ndarray] = {}
        with _progress(progress, f"importing {name}", source.tensor_bytes()) as advance:
            for parameter, array in source.tensors():
                kind = parameter_kind(parameter, array)
                tensor_id = tensors.put(conn, array, parameter, store=store)
                index = layer_index(parameter, shape)
                conn.execute(
                    """insert into model_weights (model_id, layer_id, parameter_name, parameter_kind, tensor_id,
                                                  requires_grad)
                       values (%s, %s, %s, %s, %s, %s)""",
                    (model_id, layer_ids.get(index), parameter, kind, tensor_id, kind != "buffer"),
                )
                for embedding_type, pattern in _EMBEDDING_TABLES.items():
                    if pattern.search(parameter) and array.ndim == 2 and array.shape[1] == shape.hidden_size:
                        embedding_tables.setdefault(embedding_type, array)
                advance(array.nbytes)
        _insert_embeddings(conn, model_id, shape, embedding_tables, _vocabulary(source.directory, shape.vocab_size))
        return _summary(conn, model_id, created=True)


def _default_name(source: ModelSource) -> str:
    """The directory's name, or its parent's when the directory has a generic name (package/model/)."""
    directory = source.directory.resolve()
    return directory.parent.name if directory.name in ("model", "weights", "checkpoint") else directory.name


def _insert_model(conn, source: ModelSource, shape: ModelShape, name: str, version: str, digest: str) -> uuid.UUID:
    return conn.execute(
        """insert into models (model_name, version, architecture, model_type, vocab_size, hidden_size, num_layers,
                               num_attention_heads, num_key_value_heads, intermediate_size, max_sequence_length,
                               config, status, content_sha256, description)
           values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'ready', %s, %s) returning model_id""",
        (name, version, shape.architecture, shape.model_type, shape.vocab_size, shape.hidden_size, shape.num_layers,
         shape.heads, shape.kv_heads, shape.intermediate_size, shape.max_sequence_length, json.dumps(source.config),
         digest, f"Imported from {source.directory.resolve()}"),
    ).fetchone()[0]


def _insert_layers(conn, model_id: uuid.UUID, shape: ModelShape) -> dict[int, uuid.UUID]:
    layer_ids = {}
    group = shape.heads // shape.kv_heads if shape.kv_heads else None
    for index in range(shape.num_layers):
        layer_ids[index] = conn.execute(
            """insert into transformer_layers (model_id, layer_index, layer_type, hidden_size, intermediate_size,
                                               num_attention_heads, activation, normalization, dropout, config)
               values (%s, %s, 'transformer_block', %s, %s, %s, %s, %s, %s, %s) returning layer_id""",
            (model_id, index, shape.hidden_size, shape.intermediate_size, shape.heads, shape.activation,
             shape.normalization, shape.dropout, json.dumps({"stack": shape.stack(index)})),
        ).fetchone()[0]
        with conn.cursor().copy(
            "copy attention_heads (layer_id, head_index, head_dim, attention_type, kv_head_index) from stdin"
        ) as copy:
            for head in range(shape.heads):
                copy.write_row((layer_ids[index], head, shape.head_dim, shape.attention_type(index),
                                head // group if group else None))
    return layer_ids


def _insert_embeddings(conn, model_id, shape: ModelShape, tables: dict[str, np.ndarray], vocabulary) -> None:
    register_vector(conn)  # the binary COPY below needs the vector type's adapter, whoever opened conn
    with conn.cursor().copy(
        "copy embeddings (model_id, embedding_type, embedding_index, token_text, dimensions, embedding)"
        " from stdin (format binary)"
    ) as copy:
        copy.set_types(["uuid", "text", "int4", "text", "int4", "vector"])
        for embedding_type, table in tables.items():
            values = np.asarray(table, dtype=np.float32)
            for index, row in enumerate(values):
                text = vocabulary[index] if embedding_type == "token" and index < len(vocabulary) else None
                copy.write_row((model_id, embedding_type, index, text, shape.hidden_size, row))


def _summary(conn, model_id: uuid.UUID, created: bool) -> ImportResult:
    tensor_count, parameter_count = conn.execute(
        """select count(*), coalesce(sum(tensor_metadata.element_count) filter (where parameter_kind <> 'buffer'), 0)
           from model_weights join tensor_metadata using (tensor_id) where model_id = %s""", (model_id,),
    ).fetchone()
    embedding_count = conn.execute("select count(*) from embeddings where model_id = %s", (model_id,)).fetchone()[0]
    return ImportResult(model_id, created, tensor_count, int(parameter_count), embedding_count)


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
    with _progress(progress, f"exporting {model}", sum(row[2] for row in rows)) as advance:
        for parameter, tensor_id, size in rows:
            arrays[parameter] = tensors.get(conn, tensor_id)
            advance(size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(arrays, str(path), metadata={"format": "pt"})
    return path
