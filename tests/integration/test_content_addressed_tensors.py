"""Content-addressed tensors: a tensor whose bytes, dtype and shape the tenant already stores is not
stored again (a second registration of the same weights, a fine-tune that changed one tensor), deleting a
model keeps the tensors other models use, and no tensor is ever shared across tenants."""

from __future__ import annotations

import json

import psycopg

from arc_halo import hf, tensors
from test_model_import import assert_same_tensors, llama_tensors, write_sharded


def stored_bytes(conn: psycopg.Connection) -> tuple[int, int]:
    return conn.execute("select (select count(*) from tensor_metadata),"
                        " (select coalesce(sum(octet_length(chunk_data)), 0) from tensor_data)").fetchone()


def test_identical_tensors_are_stored_once_per_tenant(test_server, built_copy, tmp_path) -> None:
    arrays = llama_tensors()
    write_sharded(tmp_path / "base", arrays)
    fine_tune = dict(arrays, **{"model.norm.weight": arrays["model.norm.weight"] * 2})  # one layer trained
    tuned_shards = write_sharded(tmp_path / "tuned", fine_tune)
    write_sharded(tmp_path / "renamed", arrays)
    config = json.loads((tmp_path / "renamed" / "config.json").read_text())
    (tmp_path / "renamed" / "config.json").write_text(json.dumps(dict(config, _name_or_path="org/renamed")))

    with psycopg.connect(test_server.url(built_copy)) as conn:
        base = hf.import_model(conn, tmp_path / "base")
        count, size = stored_bytes(conn)
        # The same weights under a second name (its config differs, so it is a model of its own): no bytes.
        renamed = hf.import_model(conn, tmp_path / "renamed", name="renamed")
        assert renamed.created and renamed.model_id != base.model_id
        assert stored_bytes(conn) == (count, size)
        # A fine-tune that changed one tensor costs that tensor only.
        tuned = hf.import_model(conn, tmp_path / "tuned", name="tuned")
        assert stored_bytes(conn) == (count + 1, size + arrays["model.norm.weight"].nbytes)
        shared = conn.execute(
            """select count(*) from model_weights as tuned join model_weights as base using (parameter_name, tensor_id)
               where tuned.model_id = %s and base.model_id = %s""", (tuned.model_id, base.model_id)).fetchone()[0]
        assert shared == len(arrays) - 1

        # Deleting the base model keeps every tensor the others use; they still export bit for bit.
        conn.execute("delete from models where model_id = %s", (base.model_id,))
        conn.commit()
        assert_same_tensors(tuned_shards, hf.export_model(conn, "tuned", tmp_path / "out" / "tuned.safetensors"))
        assert tensors.get_parameter(conn, "renamed", "lm_head.weight").tobytes() == arrays["lm_head.weight"].tobytes()

        # Another tenant storing the same bytes gets tensors of its own.
        conn.execute("select set_config('app.tenant_id', 'tenant-b', false)")
        other = hf.import_model(conn, tmp_path / "renamed", name="renamed")
        assert other.created
        owners = conn.execute(
            """select distinct tensor_metadata.tenant_id from model_weights join tensor_metadata using (tensor_id)
               where model_id = %s""", (other.model_id,)).fetchall()
        assert owners == [("tenant-b",)]
        assert stored_bytes(conn)[1] == size + arrays["model.norm.weight"].nbytes + size
