"""Hugging Face-style model directories in and out of the registry.

Import reads `config.json` and `model.safetensors` (or the shards listed in `model.safetensors.index.json`)
with the safetensors library, and writes in one transaction: the models row, its layers and attention
heads from the config, every tensor with its chunks, model_weights rows mapped to layers, and the token,
position and segment embedding tables as vectors. The model's content_sha256 covers the config and every
tensor's name, dtype, shape and SHA-256: importing the same model again returns the stored one and
writes nothing. Before anything is written, the config is checked against the weights (layers, widths,
attention heads and head_dim, key/value heads, vocab_size, intermediate_size); a disagreement names the
field and both values. Export writes the stored tensors back to one safetensors file, bit for bit, with
the input's `__metadata__`; a single-file model comes back byte-identical to its input.

Modules: `source` (the directory), `config` (its shape), `agreement` (config against weights), `naming`
(what parameter names say), `validation`, `hashing`, `tokenizer`, `progress`, `writes` (the rows),
`importing` and `export`.
"""

from arc_halo.hf.config import ModelShape
from arc_halo.errors import ModelImportError
from arc_halo.hf.export import export_model
from arc_halo.hf.importing import import_model
from arc_halo.hf.source import ModelSource
from arc_halo.hf.writes import ImportResult

__all__ = ["ImportResult", "ModelImportError", "ModelShape", "ModelSource", "export_model", "import_model"]
