"""Issue 21: the shape of the house, read from the source with `ast` so a new module is held to it too.

- no import circle in src/: every import counts, also one inside a function (a lazy import still ties
  the two modules together);
- the tenant setting is spelled once in Python (arc_halo.tenancy) and once for dbt (the project variable
  tenant_setting), and the two agree;
- nothing outside the library (sample data, CLI, scripts, benchmarks) INSERTs into an operational table,
  bar the benchmark baselines and server-side bulk setup listed with their reasons;
- every exception class of the library lives in errors.py (private control-flow exceptions, named with
  a leading underscore, excepted), nothing raises the bare root ArcHaloError, and one helper
  (errors.first_line) gives an exception's message as one line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from arc_halo import tenancy

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "src"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCES).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in SOURCES.rglob("*.py") if "egg-info" not in str(path)}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project's modules `name` imports, anywhere in the file (`from a import b` counts a.b when b is
    a module, else a)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph`, as the modules around it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_in_src() -> None:
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(name, path, known) for name, path in modules.items()}
    assert "arc_halo.tenancy" in graph["arc_halo.db"]  # the walk sees imports at all
    # a package's __init__ that re-exports its modules is not a circle with them
    for package in [name for name, path in modules.items() if path.name == "__init__.py"]:
        graph[package] = {target for target in graph[package] if not target.startswith(package + ".")}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_tenant_setting_is_named_once_in_python_and_once_for_dbt() -> None:
    project = yaml.safe_load((ROOT / "dbt_project.yml").read_text())
    assert project["vars"]["tenant_setting"] == tenancy.SETTING
    spelled = [str(path.relative_to(ROOT)) for path in SOURCES.rglob("*.py") if tenancy.SETTING in path.read_text()]
    assert spelled == ["src/arc_halo/tenancy.py"]
    for folder in ("macros", "models", "src/dbt/include"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".sql", ".yml", ".py"):
                assert tenancy.SETTING not in path.read_text(), f"{path.relative_to(ROOT)} spells the setting itself"


def _class_bases(node: ast.ClassDef) -> set[str]:
    return {base.id if isinstance(base, ast.Name) else base.attr for base in node.bases
            if isinstance(base, (ast.Name, ast.Attribute))}


def test_every_public_exception_class_lives_in_errors_py() -> None:
    errors = ast.parse((SOURCES / "arc_halo" / "errors.py").read_text())
    tree = {node.name for node in errors.body if isinstance(node, ast.ClassDef)}
    outside = []
    for name, path in _modules().items():
        if path.name == "errors.py" and name == "arc_halo.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_") and (
                    _class_bases(node) & (tree | {"Exception", "BaseException", "RuntimeError", "ValueError"})):
                outside.append(f"{name}.{node.name}")
    assert outside == []


def test_nothing_raises_the_bare_root_error() -> None:
    bare = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name) \
                    and node.exc.func.id == "ArcHaloError":
                bare.append(f"{name}:{node.lineno}")
    assert bare == []


def test_one_helper_gives_an_errors_first_line() -> None:
    """errors.first_line is the one helper for a one-line message; no module writes its own."""
    own = [f"{name}:{node.lineno}" for name, path in _modules().items() if name != "arc_halo.errors"
           for node in ast.walk(ast.parse(path.read_text()))
           if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") == "first_line"]
    assert own == []


# Raw INSERTs outside the library that are the point of their benchmark, with why. Nothing else outside
# the library writes an operational table: the sample data and the benchmarks go through the public API.
RAW_INSERTS_ALLOWED = {
    ("benchmarks/bench_metric_ingest.py", "training_metrics"): "the baseline: one INSERT per row, hand-written",
    ("benchmarks/bench_tensor_store.py", "tensor_metadata"): "the baseline: the server alone, no library",
    ("benchmarks/bench_training_progress.py", "training_metrics"):
        "10,000,000 metric rows generated inside the server: setup at a scale no client writes",
    ("benchmarks/bench_online_ddl.py", "kv_cache"): "1,000,000 cache rows generated inside the server: setup",
}


def _operational_tables() -> set[str]:
    return {path.stem for path in (ROOT / "models" / "raw").rglob("*.sql")}


def test_nothing_outside_the_library_inserts_into_an_operational_table() -> None:
    """The sample data, the CLI, the scripts and every benchmark write through the library's public write
    API (arc_halo.registry, tensors, training, inference, fusion), so `make run` and the benchmarks exercise
    the paths applications take; a new raw INSERT fails here."""
    tables = _operational_tables()
    assert {"models", "transformer_layers", "model_weights", "kv_cache"} <= tables
    outside = [*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "scripts").glob("*.py"),
               SOURCES / "arc_halo" / "sample.py", *(SOURCES / "arc_halo" / "cli").glob("*.py")]
    found = set()
    for path in outside:
        for match in re.finditer(r"\binsert\s+into\s+(?:\w+\.)?(\w+)", path.read_text(), re.IGNORECASE):
            if match.group(1) in tables:
                found.add((str(path.relative_to(ROOT)), match.group(1)))
    assert found - set(RAW_INSERTS_ALLOWED) == set()
    assert set(RAW_INSERTS_ALLOWED) <= found, "an allowed raw INSERT is gone: drop it from the list"


def test_one_connection_string_builder_and_one_retry_policy() -> None:
    """Connection strings are made by conninfo.connection_string only, and retries go through arc_halo.retries (stamina),
    not hand-written sleep loops."""
    builders, sleepers = [], []
    for name, path in _modules().items():
        source = path.read_text()
        if name != "arc_halo.conninfo" and "make_conninfo(" in source:
            builders.append(name)
        if name not in ("arc_halo.retries",) and re.search(r"\bfor \w+ in range\(\w*ATTEMPTS\w*\)|2\s*\*\*\s*attempt", source):
            sleepers.append(name)
    assert builders == []
    assert sleepers == []


def test_the_cli_is_a_thin_layer() -> None:
    """One module per command group, each registering its own commands, and no SQL in any of them: every
    handler is a call into the library."""
    package = SOURCES / "arc_halo" / "cli"
    groups = sorted(path.stem for path in package.glob("*_commands.py"))
    assert {"db_commands", "model_commands", "storage_commands", "branch_commands", "upkeep_commands"} <= set(groups)
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text())
        calls = {node.func.attr for node in ast.walk(tree)
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}
        assert not calls & {"execute", "executemany", "copy", "cursor"}, f"{path.name} runs SQL itself"
        if path.name.endswith("_commands.py"):
            assert any(isinstance(node, ast.FunctionDef) and node.name == "register" for node in tree.body), path.name



def test_targets_is_split_by_concern() -> None:
    """Target choice (targets), the environment for a target (environments), reaching a database
    (connecting) and branch names (branch_names) are separate rooms; targets.py defines none of the others'."""
    tree = ast.parse((SOURCES / "arc_halo" / "targets.py").read_text())
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert {"current_target", "database_url", "local_database"} <= defined
    assert not defined & {"target_environment", "local_environment", "probe", "with_connect_retries",
                          "validate_branch_name", "branch_database"}
