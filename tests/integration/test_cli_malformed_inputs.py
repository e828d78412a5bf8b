"""Issue 10 §3: malformed input to any CLI command is one line on stderr, exit code 2, no traceback, and
no row changed. One database (with one imported model) serves every case."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg
import pytest
from safetensors.numpy import save_file

from arc_halo import hf
from rows import row_counts
from test_model_import import LLAMA_CONFIG, llama_tensors
from cli_runner import arc_halo



def model_directory(root: Path, config: dict | bytes | None = None, arrays: dict | None = None) -> Path:
    """A small Llama-shaped model directory; `config` replaces config.json (bytes are written as they are)."""
    directory = root / "tiny"
    directory.mkdir(parents=True, exist_ok=True)
    body = config if isinstance(config, bytes) else json.dumps(LLAMA_CONFIG if config is None else config).encode()
    (directory / "config.json").write_bytes(body)
    save_file(llama_tensors() if arrays is None else arrays, str(directory / "model.safetensors"))
    return directory


def with_config(**changes) -> Callable[[Path], list[str]]:
    return lambda root: ["model", "import", str(model_directory(root, {**LLAMA_CONFIG, **changes}))]


def with_weights(edit: Callable[[dict], None]) -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        arrays = llama_tensors()
        edit(arrays)
        return ["model", "import", str(model_directory(root, arrays=arrays))]
    return build


def with_weight_file(damage: Callable[[bytes], bytes]) -> Callable[[Path], list[str]]:
    def build(root: Path) -> list[str]:
        directory = model_directory(root)
        path = directory / "model.safetensors"
        path.write_bytes(damage(path.read_bytes()))
        return ["model", "import", str(directory)]
    return build


def fixed(*args: str) -> Callable[[Path], list[str]]:
    return lambda root: list(args)


CASES = {
    "config-not-json": (lambda root: ["model", "import", str(model_directory(root, b"{not json"))], "is not valid JSON"),
    "config-a-list": (lambda root: ["model", "import", str(model_directory(root, b"[1, 2]"))], "not an object"),
    "config-binary": (lambda root: ["model", "import", str(model_directory(root, b"\xff\xfe{"))], "config.json"),
    "hidden-size-zero": (with_config(hidden_size=0), "hidden_size = 0 is out of range"),
    "hidden-size-negative": (with_config(hidden_size=-64), "hidden_size = -64 is out of range"),
    "hidden-size-fraction": (with_config(hidden_size=64.5), "hidden_size must be a whole number"),
    "hidden-size-text": (with_config(hidden_size="64"), "hidden_size must be a whole number"),
    "vocab-absurd": (with_config(vocab_size=10**15), "vocab_size = 1000000000000000 is out of range"),
    "layers-absurd": (with_config(num_hidden_layers=10**9), "num_layers = 1000000000 is out of range"),
    "heads-do-not-divide": (with_config(num_attention_heads=5), "5 attention heads do not divide hidden_size 64"),
    "layer-count-mismatch": (with_config(num_hidden_layers=3), "config.json says 3 layers but the weights have blocks 0 to 1"),
    "width-mismatch": (with_weights(lambda a: a.update({"model.embed_tokens.weight": np.zeros((50, 32), np.float32)})),
                       "embedding table model.embed_tokens.weight is 32 wide"),
    "weights-truncated": (with_weight_file(lambda data: data[:-100]), "is not a readable safetensors file"),
    "header-garbage": (with_weight_file(lambda data: struct.pack("<Q", 20) + b"{this is not json!!}" + data[28:]),
                       "is not a readable safetensors file"),
    "header-length-absurd": (with_weight_file(lambda data: struct.pack("<Q", 2**62) + data[8:]),
                             "is not a readable safetensors file"),
    "weights-empty-file": (with_weight_file(lambda data: b""), "is not a readable safetensors file"),
    # issue 18 §6: a valid safetensors file that holds no tensor was imported as a model without weights
    "weights-without-tensors": (lambda root: ["model", "import", str(model_directory(root, arrays={}))],
                                "the safetensors weights hold no tensors"),
    "external-empty-segment": (lambda root: ["model", "import", str(model_directory(root)), "--external",
                                             "s3://bucket/models//llama"], "has an empty, '.' or '..' path segment"),
    "external-leading-double-slash": (lambda root: ["model", "import", str(model_directory(root)), "--external",
                                                    "s3://bucket//llama"], "has an empty, '.' or '..' path segment"),
    "external-dot-dot": (lambda root: ["model", "import", str(model_directory(root)), "--external",
                                       "s3://bucket/models/../llama"], "has an empty, '.' or '..' path segment"),
    "external-file-dot-dot": (lambda root: ["model", "import", str(model_directory(root)), "--external",
                                            f"file://{root}/../elsewhere"], "has a '..' path segment"),
    "orphans-no-such-directory": (fixed("storage", "orphans", "file:///nonexistent/arc-halo-blobs"),
                                  "no directory /nonexistent/arc-halo-blobs"),
    "older-than-absurd": (fixed("storage", "orphans", "file:///nonexistent", "--older-than", "1e300d"),
                          "an age of '1e300d' reaches past any object; use at most 36500d"),
    "older-than-past-datetime": (fixed("storage", "orphans", "file:///nonexistent", "--older-than", "4000000d"),
                                 "reaches past any object"),
    "name-too-long": (lambda root: ["model", "import", str(model_directory(root)), "--name", "n" * 300],
                      "model name is 300 characters long"),
    "version-too-long": (lambda root: ["model", "import", str(model_directory(root)), "--name", "v",
                                       "--version", "9" * 100], "version is 100 characters long"),
    "no-such-directory": (fixed("model", "import", "/nonexistent/model"), "no config.json"),
    "export-unknown-model": (lambda root: ["model", "export", "no-such-model", str(root / "m.safetensors")],
                             "no stored weights for model no-such-model"),
    "export-wrong-extension": (lambda root: ["model", "export", "seeded", str(root / "m.bin")],
                               "must end in .safetensors"),
    "export-unwritable": (fixed("model", "export", "seeded", "/proc/arc-halo/m.safetensors"), "/proc/arc-halo"),
    "batch-size-zero": (fixed("cache", "purge", "--batch-size", "0"), "0 must be at least 1"),
    "batch-size-text": (fixed("cache", "purge", "--batch-size", "lots"), "'lots' is not a whole number"),
    "batch-size-absurd": (fixed("cache", "purge", "--batch-size", "99999999999"), "batch_size must be between 1"),
    "months-negative": (fixed("partitions", "create", "--months-back", "-1"), "-1 must be 0 or more"),
    "months-absurd": (fixed("partitions", "create", "--months-ahead", "100000"), "months_ahead must be between 0"),
    "months-fraction": (fixed("partitions", "create", "--months-ahead", "1.5"), "'1.5' is not a whole number"),
    "plot-unknown-session": (lambda root: ["plot", "training", "no-such-run", "-o", str(root / "c.png")],
                             "no training session named or with id 'no-such-run'"),
    "plot-wrong-extension": (fixed("plot", "training", "run", "-o", "curves.bmp"), "must end in .png or .svg or .pdf"),
    "branch-time-malformed": (fixed("branch", "create", "feature", "--at", "yesterday"), "is not an ISO 8601 time"),
    "branch-time-without-zone": (fixed("branch", "create", "feature", "--at", "2026-11-26T12:00:00"),
                                 "needs a time zone"),
    "unknown-command": (fixed("modle", "list"), "invalid choice: 'modle'"),
    "unknown-option": (fixed("model", "list", "--all"), "unrecognized arguments: --all"),
    "missing-argument": (fixed("model", "export", "seeded"), "the following arguments are required: output"),
}


@pytest.fixture(scope="module")
def seeded_url(test_server, template_database, tmp_path_factory):
    """A private copy with one imported model ('seeded') and rows in every table."""
    from rows import insert_everything

    name = test_server.create_database(template=template_database)
    url = test_server.url(name)
    with psycopg.connect(url) as conn:
        hf.import_model(conn, model_directory(tmp_path_factory.mktemp("seed")), name="seeded")
        insert_everything(conn)
        conn.commit()
    yield url
    test_server.drop_database(name)


@pytest.mark.parametrize("case", CASES)
def test_malformed_input_is_one_line_exit_2_and_changes_nothing(seeded_url, tmp_path, case) -> None:
    build, expected = CASES[case]
    args = build(tmp_path)
    with psycopg.connect(seeded_url) as conn:
        before = row_counts(conn)
    result = arc_halo(*args, url=seeded_url)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("arc-halo: error: "), result.stderr[-2000:]
    assert expected in lines[0]
    with psycopg.connect(seeded_url) as conn:
        assert row_counts(conn) == before


def test_content_registered_under_another_name_says_which(seeded_url, tmp_path) -> None:
    result = arc_halo("model", "import", str(model_directory(tmp_path)), "--name", "other-name", url=seeded_url)
    # Asked to store it under another name: an error, not a success that quietly did something else.
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("arc-halo: error: this model is already registered as 'seeded'")
    assert "--name 'other-name' was not used" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    external = arc_halo("model", "import", str(model_directory(tmp_path)), "--external-dir", str(tmp_path / "objects"),
                        url=seeded_url)
    assert external.returncode == 2 and "--external-dir was not applied" in external.stderr, external.stderr
    assert not any((tmp_path / "objects").glob("**/*.*"))
