"""Issue 18 §7: every public callable of arc_halo, found by introspection (so a new one is swept without a
new test), is called with a wrong type, an unknown id, and malformed text (not a UUID, a NUL character,
a number past any column) in each parameter in turn, the others valid. Each call must raise an
ArcHaloError subclass or succeed (e.g. nothing found for an unknown id): never a raw psycopg error,
TypeError, ValueError, OverflowError, KeyError or AttributeError.

Public: the modules under arc_halo whose names have no leading underscore; in each, `__all__` where the
module declares it, else every name without a leading underscore defined there (functions, classes and
their classmethods, and the methods of classes in INSTANCES). A package that declares `__all__` (hf)
shows its public face there; its submodules are its implementation. Every exclusion is listed below
with its reason. The calls run on a private copy of the built database, as its owner and as the
application role with row-level security on, each call's writes rolled back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import json
import pkgutil
import signal
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path, PurePath

import numpy as np
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from safetensors.numpy import save_file

import arc_halo
from arc_halo import db, errors, hf, tensors, training
from rows import insert_everything
from test_model_import import LLAMA_CONFIG, llama_tensors

EXCLUDED_MODULES = {
    "arc_halo.cli": "the CLI package (its command groups too): its answers to bad input are tested through the "
                    "command in test_cli_malformed_inputs and test_errors_and_cli",
    "arc_halo.embedded": "starts, stops and creates databases on the embedded PostgreSQL server",
    "arc_halo.local_s3": "starts a SeaweedFS server",
    "arc_halo.lint": "runs the lint tools over the repository",
    "arc_halo.rows": "the library's own reading of a cursor it made (one row of a single-row statement), "
                     "never handed a caller's value",
    "arc_halo.dbt": "runs dbt, which builds databases",
    "arc_halo.schema_export": "builds a scratch database with dbt",
    "arc_halo.branches": "creates and drops databases, or calls the Neon API (tested in test_branches)",
    "arc_halo.online_ddl": "the build's DDL machinery: switches the connection to autocommit and changes the "
                           "schema; its steps come from the project's macros (tested in test_online_ddl)",
    "arc_halo.migrations": "the build's migration runner: autocommit DDL from the project's files (tested in "
                           "test_migrations)",
    "arc_halo.secret_scan": "the lint gate's credential scan over the repository's files",
    "arc_halo.conninfo": "parses the connection strings of the environment; db.connect and db.pool, which take a "
                         "caller's, are swept (and it is being reworked for issue 18 §3, TLS on every path)",
    "arc_halo.errors": "builds the errors themselves, from exceptions the library caught",
    "arc_halo.validation": "the checks themselves: their bounds are the library's constants, and the values they "
                           "check are swept through every public call that uses them",
}
EXCLUDED = {
    "arc_halo.db.TenantConnection": "a psycopg Connection subclass: its constructor is psycopg's (db.connect is swept)",
    "arc_halo.replica.ReplicaConnection": "a psycopg Connection subclass: its constructor is psycopg's "
                                          "(replica.connect_replica is swept)",
    "arc_halo.search.SearchResult": "a result record (the rows found, a list, with how they were found)",
    "arc_halo.replica.ReadOnlyCursor": "a psycopg Cursor subclass that connect_replica installs; psycopg constructs it",
    "arc_halo.sample.load": "loads the whole sample dataset (~2 s); its one parameter is the connection",
    "arc_halo.environments.target_environment": "for the local target it creates the named database on the embedded "
                                           "server (the CLI tests cover its answers)",
    "arc_halo.targets.database_url": "with no URL configured it starts the embedded server",
    "arc_halo.sample.gpt2_parameters": "lists the parameters of the sample's own model shapes, not a caller's",
}

WRONG_TYPE = object()
MALFORMED = {
    "a wrong type": WRONG_TYPE,
    "an unknown id": uuid.UUID("5b3f1f0e-0000-4000-8000-00000000a1b2"),
    "text that is not a UUID": "not-a-uuid",
    "text with a NUL": "nul\x00inside",
    "a number past any column": 10**400,
}
# What must never escape a public call.
RAW = (psycopg.Error, TypeError, ValueError, OverflowError, KeyError, AttributeError, IndexError, LookupError)


@dataclass
class Stock:
    """Valid values for the sweep: rows that exist, a directory to write in."""

    conn: psycopg.Connection
    ids: dict[str, object]
    directory: Path
    connect: Callable[[], psycopg.Connection]


def _model_directory(root: Path) -> Path:
    directory = root / "tiny"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(LLAMA_CONFIG))
    save_file(llama_tensors(), str(directory / "model.safetensors"))
    return directory


# A valid value for every parameter name a public callable takes (and has no default for); a new
# parameter name needs a line here, not a new test.
VALID: dict[str, Callable[[Stock], object]] = {
    "conn": lambda s: s.conn,
    "conns": lambda s: [s.conn],
    "width": lambda s: 384,
    "row_count": lambda s: 100,
    "k": lambda s: 10,
    "model_id": lambda s: s.ids["model"],
    "model": lambda s: "seeded",
    "session_id": lambda s: s.ids["session"],
    "session": lambda s: "run",
    "checkpoint_id": lambda s: s.ids["checkpoint"],
    "tensor_id": lambda s: s.ids["tensor"],
    "reactor_id": lambda s: s.ids["reactor"],
    "source_model_id": lambda s: s.ids["model"],
    "target_model_id": lambda s: s.ids["model2"],
    "contributing_model_ids": lambda s: [s.ids["model"]],
    "layer_id": lambda s: s.ids["layer"],
    "parameter_name": lambda s: "model.norm.weight",
    "name": lambda s: "swept",
    "strategy": lambda s: "weighted_average",
    "weight": lambda s: 0.0,
    "interaction_type": lambda s: "feeds",
    "generated_tokens": lambda s: 3,
    "step": lambda s: 1,
    "token_index": lambda s: 0,
    "head_index": lambda s: 0,
    "position_start": lambda s: 0,
    "array": lambda s: np.arange(6, dtype=np.float32).reshape(2, 3),
    "activation": lambda s: np.zeros((2, 4), np.float32),
    "keys": lambda s: np.zeros((2, 4), np.float32),
    "values": lambda s: np.zeros((2, 4), np.float32),
    "weights": lambda s: np.full((2, 2), 0.5, np.float32),
    "query": lambda s: np.arange(1, 9, dtype=np.float32),
    "tables": lambda s: [("token", np.zeros((2, 8), np.float32), None)],
    "directory": lambda s: _model_directory(s.directory),
    "path": lambda s: s.directory / "out.safetensors",
    "output": lambda s: s.directory / "curves.png",
    "prefix_uri": lambda s: s.directory.as_uri(),
    "uri": lambda s: tensors.FileStore(s.directory).write(memoryview(b"four")),
    "target": lambda s: memoryview(bytearray(4)),
    "rows": lambda s: [],
    "uris": lambda s: [],
    "older_than": lambda s: timedelta(hours=1),
    "text": lambda s: "2h",
    "dtype": lambda s: np.dtype(np.float32),
    "root": lambda s: s.directory,
    "scheme": lambda s: "swept",
    "store": lambda s: tensors.FileStore(s.directory),
    "table": lambda s: "models",
    "columns": lambda s: ("model_name",),
    "config": lambda s: dict(LLAMA_CONFIG),
    "value": lambda s: 1,
    "tenant": lambda s: "acme",
    "url": lambda s: s.ids["url"],
    "source": lambda s: "the sweep",
    "label": lambda s: "the sweep",
    "connect": lambda s: (lambda: None),
    "pieces": lambda s: [],
    "tensor": lambda s: tensors.TensorBytes.of(np.zeros(3, np.float32)),
    "content_sha256": lambda s: "0" * 64,
    "shape": lambda s: (2, 3),
    "exc": lambda s: psycopg.OperationalError("connection refused"),
    "names": lambda s: ("HOME",),
    "main": lambda s: "arc_halo",
    "branch": lambda s: "feature",
    "server": lambda s: None,
    "env": lambda s: {"ARC_HALO_TARGET": "ci"},
    "conninfo": lambda s: conninfo_to_dict(s.ids["url"]),
    "attempts": lambda s: 1,
    "first_delay": lambda s: 0.0,
    "max_delay": lambda s: 0.0,
    "minimum": lambda s: 0,
    "maximum": lambda s: 10,
    "max_length": lambda s: 10,
    "values_by_name": lambda s: {"loss": 1.0},
    "key": lambda s: "hidden_size",
    "layer_index": lambda s: 0,
    "function": lambda s: (lambda: None),
    # arc_halo.registry, fusion.set_state
    "architecture": lambda s: "decoder_only",
    "vocab_size": lambda s: 8,
    "hidden_size": lambda s: 8,
    "num_layers": lambda s: 1,
    "num_attention_heads": lambda s: 2,
    "intermediate_size": lambda s: 16,
    "max_sequence_length": lambda s: 8,
    "status": lambda s: "ready",
    "kind": lambda s: "weight",
    "segment_count": lambda s: 1,
    "state": lambda s: {"focus": 1},
    "on": lambda s: OSError,
    "tries": lambda s: 1,
}

# How to make an instance of a public class whose methods are swept.
INSTANCES: dict[str, Callable[[Stock], object]] = {
    "arc_halo.training.MetricLogger": lambda s: training.MetricLogger(s.conn, s.ids["session"], flush_seconds=3600),
    "arc_halo.filestore.FileStore": lambda s: tensors.FileStore(s.directory),
}


def _public_modules() -> Iterator[object]:
    packages_with_all = set()
    for info in pkgutil.walk_packages(arc_halo.__path__, "arc_halo."):
        name = info.name
        if any(part.startswith("_") for part in name.split(".")) or name in EXCLUDED_MODULES or any(
                name.startswith(excluded + ".") for excluded in EXCLUDED_MODULES):
            continue
        if any(name.startswith(package + ".") for package in packages_with_all):
            continue  # the implementation of a package that declares its public names
        module = importlib.import_module(name)
        if info.ispkg and hasattr(module, "__all__"):
            packages_with_all.add(name)
        yield module


def _public_names(module) -> list[tuple[str, object]]:
    declared = getattr(module, "__all__", None)
    if declared is not None:
        return [(name, getattr(module, name)) for name in declared]
    return [(name, value) for name, value in vars(module).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__]


def public_callables() -> dict[str, tuple[object, str | None]]:
    """qualified name -> (the callable, or the unbound method; the INSTANCES key its `self` comes from)."""
    found: dict[str, tuple[object, str | None]] = {}
    for module in _public_modules():
        for name, value in _public_names(module):
            qualified = f"{module.__name__}.{name}"
            if qualified in EXCLUDED:
                continue
            if inspect.isclass(value):
                if issubclass(value, BaseException) or getattr(value, "_is_protocol", False):
                    continue  # exceptions are raised, not called; protocols cannot be instantiated
                if not dataclasses.is_dataclass(value):  # a dataclass is a record the library fills
                    found[qualified] = (value, None)
                class_key = f"{value.__module__}.{value.__qualname__}"
                for method_name, method in vars(value).items():
                    if method_name.startswith("_") or f"{qualified}.{method_name}" in EXCLUDED:
                        continue
                    if isinstance(method, (classmethod, staticmethod)):
                        found[f"{qualified}.{method_name}"] = (getattr(value, method_name), None)
                    elif inspect.isfunction(method) and class_key in INSTANCES:
                        found[f"{qualified}.{method_name}"] = (method, class_key)
            elif inspect.isfunction(value):
                found[qualified] = (value, None)
    return found


CALLABLES = public_callables()


def _parameters(function) -> list[inspect.Parameter]:
    parameters = list(inspect.signature(function).parameters.values())
    return [p for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _cases() -> Iterator[tuple[str, str]]:
    for qualified, (function, owner) in CALLABLES.items():
        parameters = _parameters(function)[1 if owner else 0:]
        for parameter in parameters:
            if parameter.name == "self":
                continue
            yield qualified, parameter.name


CASES = list(_cases())


def test_the_sweep_finds_the_public_api() -> None:
    """The introspection finds what the README documents, and every module it skips is named above."""
    for expected in ("arc_halo.tensors.get", "arc_halo.training.finish_session", "arc_halo.hf.import_model",
                     "arc_halo.search.nearest", "arc_halo.db.connect", "arc_halo.fusion.attach_model",
                     "arc_halo.training.MetricLogger.log", "arc_halo.objectstore.find_orphans",
                     "arc_halo.hf.ModelSource.open"):
        assert expected in CALLABLES
    modules = {info.name for info in pkgutil.walk_packages(arc_halo.__path__, "arc_halo.")}
    assert set(EXCLUDED_MODULES) <= modules, "an excluded module no longer exists: drop it from the list"
    assert len(CASES) > 150


@pytest.fixture(scope="module", params=["owner", "app role with row-level security"])
def stock_database(request, test_server, tmp_path_factory) -> Iterator[tuple[Callable[[], psycopg.Connection], dict]]:
    """A private copy of a build holding one of everything and an imported model named 'seeded' (for
    tenant A), and how to connect to it: as the owner, or as a login of arc_halo_app acting as tenant A
    on a build with row-level security on."""
    rls = request.param != "owner"
    template = request.getfixturevalue("rls_template_database" if rls else "template_database")
    name = test_server.create_database(template=template)
    url = test_server.url(name)
    try:
        with psycopg.connect(url) as conn:
            conn.execute("select set_config('app.tenant_id', 'A', true)")
            ids = insert_everything(conn)
            hf.import_model(conn, _model_directory(tmp_path_factory.mktemp("model")), name="seeded", workers=0)
            ids["tensor"] = tensors.put(conn, np.arange(4, dtype=np.float32), "swept-tensor")
            ids["checkpoint"] = training.save_checkpoint(conn, ids["model"], ids["session"], 2,
                                                         {"w": np.ones(3, np.float32)})
            conn.commit()
        if rls:
            url = make_conninfo(url, user=request.getfixturevalue("app_login"))
        ids["url"] = url
        yield (lambda: db.connect(url, tenant="A", attempts=1)) if rls else (lambda: psycopg.connect(url)), ids
    finally:
        test_server.drop_database(name)


@pytest.fixture(scope="module")
def stock(stock_database, tmp_path_factory) -> Iterator[Stock]:
    connect, ids = stock_database
    with connect() as conn:
        yield Stock(conn, ids, tmp_path_factory.mktemp("sweep"), connect)


def _arguments(stock: Stock, qualified: str, function, owner: str | None, target: str, bad: object) -> dict:
    arguments = {}
    for parameter in _parameters(function)[1 if owner else 0:]:
        if parameter.name == target:
            arguments[parameter.name] = bad
        elif parameter.default is not parameter.empty:
            continue
        else:
            assert parameter.name in VALID, (
                f"{qualified}: no valid value known for its parameter {parameter.name!r}; add one to VALID in "
                f"{Path(__file__).name}")
            arguments[parameter.name] = VALID[parameter.name](stock)
    return arguments


class Hung(Exception):
    pass


def _hung(signum, frame):
    raise Hung(f"no answer within {CALL_SECONDS} s")


CALL_SECONDS = 20  # a call that waits longer (a retry loop told to try 10**400 times) is a failure


def _call(stock: Stock, qualified: str, target: str, bad: object) -> None:
    function, owner = CALLABLES[qualified]
    arguments = _arguments(stock, qualified, function, owner, target, bad)
    if owner:
        function = getattr(INSTANCES[owner](stock), function.__name__)
    result = function(**arguments)
    if isinstance(result, contextlib.AbstractContextManager) and not isinstance(result, (psycopg.Connection, PurePath)):
        with result:  # a context manager does its work on entry
            pass
    if isinstance(result, psycopg.Connection):
        result.close()


@pytest.mark.parametrize(("qualified", "parameter"), CASES, ids=[f"{q}({p})" for q, p in CASES])
def test_malformed_argument_raises_an_arc_halo_error(stock: Stock, qualified: str, parameter: str,
                                                     monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)  # a malformed path argument lands here
    monkeypatch.setenv("ARC_HALO_DATABASE_URL", stock.ids["url"])
    escaped = []
    signal.signal(signal.SIGALRM, _hung)
    for label, bad in MALFORMED.items():
        signal.alarm(CALL_SECONDS)
        try:
            _call(stock, qualified, parameter, bad)
        except errors.ArcHaloError:
            pass
        except (*RAW, Hung) as exc:
            escaped.append(f"{label}: {type(exc).__module__}.{type(exc).__name__}: {errors.first_line(exc)[:200]}")
        finally:
            signal.alarm(0)
            if stock.conn.closed or stock.conn.broken:
                stock.conn = stock.connect()
            stock.conn.rollback()
    assert not escaped, f"{qualified}({parameter}=...) let raw errors out:\n" + "\n".join(escaped)
