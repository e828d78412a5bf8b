"""Issue 18 §3: the TLS rule on every path that opens a connection, not only on URLs from the environment.

The sites are found, not listed: every call in src/ that opens a database connection (psycopg's and
psycopg2's connect, a connection class's connect, a pool, dbt's connection manager) must sit in a function
that applies the rule first (or in its class's __init__), and must have a case below. A new site fails
`test_every_connection_site_checks_and_has_a_case` until it does both.

The cases run in an empty network namespace (`unshare -n`), so no packet can leave the machine whatever
the code does. Inside it the "remote" address 203.0.113.5 is put on the namespace's own loopback device,
with a relay to the test server's Unix socket behind it: a plaintext connection made there by the caller
works (as one to a real remote server would), and any connection the library opened without checking
would work too. Only the library's own refusal (`... is refused; use sslmode=require`) passes.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from arc_halo import config

SOURCES = [config.project_dir() / "src" / "arc_halo", config.project_dir() / "src" / "dbt" / "adapters" / "arc_halo"]
REMOTE_ADDRESS = "203.0.113.5"  # TEST-NET-3: documentation only, routed nowhere
REFUSAL = f"for remote host {REMOTE_ADDRESS} is refused; use sslmode=require or stronger"
CHECKS = {"check_libpq_transport", "check_transport"}
# Sites that reach only the embedded server's own socket directory (they build its URL themselves).
LOCAL_ONLY = {"arc_halo/embedded.py:admin_connection", "arc_halo/embedded.py:ensure_database"}

# One case per site: Python run in the namespace, which must raise the refusal. REMOTE is a plaintext
# connection string to the "remote" address (the test database behind the relay); OPEN_REMOTE() is the
# caller's own plaintext connection there, whose copies (workers, reconnects) must be refused.
CASES = {
    "arc_halo/db.py:TenantConnection.connect": "db.TenantConnection.connect(REMOTE)",
    "arc_halo/db.py:connect": "db.connect(REMOTE, attempts=1)",
    "arc_halo/db.py:pool": "db.pool(REMOTE)",
    "arc_halo/training.py:_reopener.reopen": """
        conn = OPEN_REMOTE()
        model = insert_model(conn)
        conn.commit()
        logger = training.MetricLogger(conn, training.start_session(conn, model, 'run'), buffer_rows=1)
        conn.close()
        logger.log('loss', 1.0, step=1)  # the flush reconnects""",
    "arc_halo/parallel_upload.py:ParallelUpload": "parallel_upload.ParallelUpload(OPEN_REMOTE())",
    "arc_halo/embeddings.py:build_index": "embeddings.build_index(OPEN_REMOTE(), '5b3f1f0e-0000-4000-8000-00000000a1b2')",
    "arc_halo/replica.py:connect_replica": "replica.connect_replica(REMOTE, attempts=1)",
    "arc_halo/connecting.py:probe": f"connecting.probe({{'host': '{REMOTE_ADDRESS}', 'sslmode': 'disable'}}, 'neon', attempts=1)",
    "arc_halo/dbt.py:apply_migrations": f"""dbt.apply_migrations({{'ARC_HALO_TARGET': 'ci', 'PGHOST': '{REMOTE_ADDRESS}',
        'PGSSLMODE': 'disable', 'PGUSER': 'u', 'PGDATABASE': 'd'}})""",
    "arc_halo/schema_export.py:_ledger_rows": "schema_export.render(REMOTE)",
    "arc_halo/branches.py:LocalBranches": "branches.LocalBranches(REMOTE).list()",
    "arc_halo/branches.py:_embedded_family": "branches._embedded_family(REMOTE)",
    "dbt/adapters/arc_halo/schema_changes.py:apply_migrations": f"""schema_changes.apply_migrations(SimpleNamespace(
        config=SimpleNamespace(target_name='ci', project_root='.', credentials=SimpleNamespace(
            host='{REMOTE_ADDRESS}', port=5432, user='u', password='', database='d', sslmode='disable',
            connect_timeout=1, schema='public'))))""",
    "dbt/adapters/arc_halo/build_lock.py:acquire": "build_lock.acquire(REMOTE, 'invocation', 0)",
    "dbt/adapters/arc_halo/connections.py:ArcHaloConnectionManager.open": "DBT_RUN",
}

SCRIPT_HEAD = """
import json, socket, sys, threading
from types import SimpleNamespace
import psycopg
from arc_halo import branches, connecting, db, dbt, embeddings, parallel_upload, replica, schema_export, targets, training
from dbt.adapters.arc_halo import build_lock, schema_changes
sys.path.insert(0, 'tests/integration')
from rows import insert_model
REMOTE, SERVER_SOCKET = sys.argv[1], sys.argv[2]

def pump(source, target):
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        target.close()

listener = socket.create_server((REMOTE_ADDRESS, 5432))  # listening before the first connect

def relay():
    while True:
        client, _ = listener.accept()
        server = socket.socket(socket.AF_UNIX)
        server.connect(SERVER_SOCKET)
        for pair in ((client, server), (server, client)):
            threading.Thread(target=pump, args=pair, daemon=True).start()

threading.Thread(target=relay, daemon=True).start()
OPEN_REMOTE = lambda: psycopg.connect(REMOTE)
psycopg.connect(REMOTE, connect_timeout=5).close()  # the caller's own plaintext connection works here
"""


def _opens_connection(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id == "ConnectionPool"
    if not isinstance(func, ast.Attribute):
        return False
    receiver = func.value
    if func.attr == "connect":  # db.connect is itself a site; its callers inherit its check
        return not (isinstance(receiver, ast.Name) and receiver.id == "db")
    # dbt's connection manager opens in `open`
    return func.attr == "open" and isinstance(receiver, ast.Call) and getattr(receiver.func, "id", "") == "super"


def _calls_check(node: ast.AST) -> bool:
    return any(isinstance(inner, ast.Call) and (getattr(inner.func, "id", None) in CHECKS
                                                or getattr(inner.func, "attr", None) in CHECKS)
               for inner in ast.walk(node))


def connection_sites() -> dict[str, bool]:
    """Every site in src/ that opens a connection -> whether a check precedes it (in the enclosing
    functions, or in the __init__ of the enclosing class, which then names the site)."""
    sites: dict[str, bool] = {}
    for root in SOURCES:
        for path in sorted(root.rglob("*.py")):
            relative = path.relative_to(config.project_dir() / "src").as_posix()

            def visit(node: ast.AST, scope: list[ast.AST]) -> None:
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.Call) and _opens_connection(child):
                        functions = [s for s in scope if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
                        classes = [s for s in scope if isinstance(s, ast.ClassDef)]
                        init = next((item for item in (classes[-1].body if classes else [])
                                     if isinstance(item, ast.FunctionDef) and item.name == "__init__"), None)
                        checked = any(_calls_check(function) for function in functions)
                        if init is not None and _calls_check(init) and not checked:
                            name, checked = classes[-1].name, True
                        else:
                            name = ".".join(s.name for s in scope if isinstance(s, (ast.ClassDef, ast.FunctionDef)))
                        sites[f"{relative}:{name}"] = sites.get(f"{relative}:{name}", True) and checked
                    visit(child, [*scope, child] if isinstance(child, (ast.ClassDef, ast.FunctionDef)) else scope)

            visit(ast.parse(path.read_text()), [])
    return sites


def test_every_connection_site_checks_and_has_a_case() -> None:
    sites = connection_sites()
    unchecked = sorted(site for site, checked in sites.items() if not checked and site not in LOCAL_ONLY)
    assert unchecked == [], f"these open a connection without the TLS rule first: {unchecked}"
    assert set(sites) - LOCAL_ONLY == set(CASES), "every connection site needs a case in CASES (and no stale ones)"


def _network_namespace_works() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-n", "sh", "-c", f"ip addr add {REMOTE_ADDRESS}/32 dev lo"], capture_output=True).returncode == 0


def _run_isolated(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`script` in a new, empty network namespace whose loopback device also answers to REMOTE_ADDRESS."""
    setup = f"ip addr add {REMOTE_ADDRESS}/32 dev lo && ip link set lo up && exec \"$0\" \"$@\""
    return subprocess.run(["unshare", "-n", "sh", "-c", setup, sys.executable, "-c", script, *args],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
                          cwd=config.project_dir())


@pytest.fixture(scope="module")
def isolated() -> None:
    if not _network_namespace_works():
        pytest.skip("`unshare -n` with `ip` is not available here (needs root or user namespaces); the refusals "
                    "are checked by test_tls_rules.py without connecting")


def test_every_path_refuses_a_plaintext_remote_host_before_sending_anything(isolated, test_server, built_copy) -> None:
    local = psycopg.conninfo.conninfo_to_dict(test_server.url(built_copy))
    if not str(local.get("host", "/")).startswith("/"):
        pytest.skip("the test server is reached over TCP, which an empty network namespace cannot reach")
    remote = psycopg.conninfo.make_conninfo(test_server.url(built_copy), host=REMOTE_ADDRESS, port=5432,
                                            sslmode="disable", connect_timeout=5)
    socket_path = f"{local['host']}/.s.PGSQL.{local.get('port') or 5432}"
    body = "\nresults = {}\n"
    for site, code in CASES.items():
        if code == "DBT_RUN":
            continue
        body += (f"try:\n{textwrap.indent(textwrap.dedent(code).strip(), '    ')}\n"
                 f"    results[{site!r}] = 'no error'\n"
                 f"except BaseException as exc:\n    results[{site!r}] = type(exc).__name__ + ': ' + str(exc)\n")
    script = SCRIPT_HEAD.replace("REMOTE_ADDRESS", repr(REMOTE_ADDRESS)) + body + "print(json.dumps(results))"
    result = _run_isolated(script, remote, socket_path, env={key: "" for key in os.environ if key.startswith("PG")})
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    wrong = {site: outcome for site, outcome in outcomes.items() if REFUSAL not in outcome}
    assert wrong == {}, "these did not refuse before connecting"


def test_dbt_itself_refuses_a_plaintext_remote_profile(isolated, tmp_path) -> None:
    """Plain `dbt run` with the shipped profile's `ci` target: the project's adapter refuses before its
    first connection, not only `arc-halo`, which checks the target too."""
    from arc_halo import dbt as dbt_runner

    profiles = tmp_path / "profiles"
    profiles.mkdir()
    shutil.copy(config.project_dir() / "profiles.yml.example", profiles / "profiles.yml")
    env = {"ARC_HALO_TARGET": "ci", "PGHOST": REMOTE_ADDRESS, "PGUSER": "u", "PGDATABASE": "d",
           "PGSSLMODE": "disable", "DBT_PROFILES_DIR": str(profiles), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    result = subprocess.run(
        ["unshare", "-n", dbt_runner.dbt_executable(), "run", "--select", "v_model_architecture",
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        capture_output=True, text=True, timeout=300, cwd=config.project_dir(), env={**os.environ, **env})
    assert result.returncode != 0
    assert REFUSAL in result.stdout + result.stderr, (result.stdout + result.stderr)[-3000:]
