"""Issue 2: the embedded server survives kills and stale state, and bad configuration fails in one clear line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from arc_halo import config, connecting, embedded
from arc_halo.errors import ArcHaloError
from cli_runner import ARC_HALO as ARC
from cli_runner import arc_halo as arc

TARGET_VARIABLES = ("ARC_HALO_TARGET", "ARC_HALO_DATABASE_URL", "NEON_DATABASE_URL", "NEON_HOST", "NEON_USER",
                    "NEON_PASSWORD", "NEON_DATABASE", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE",
                    "PGSSLMODE")


def clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in TARGET_VARIABLES}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def private_state(tmp_path_factory) -> dict[str, str]:
    """A server of its own in a temporary state directory, so killing it disturbs no other test."""
    state = tmp_path_factory.mktemp("state")
    env = clean_env(ARC_HALO_STATE_DIR=str(state))
    yield env
    arc("db", "stop", env=env)


def postmaster_pid(env: dict[str, str]) -> int:
    pid_file = Path(env["ARC_HALO_STATE_DIR"]) / f"pg{config.postgres_version()}" / "postmaster.pid"
    return int(pid_file.read_text().splitlines()[0])


def test_url_prints_only_a_working_url(private_state) -> None:
    result = arc("db", "url", env=private_state)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("postgresql://postgres@/arc_halo?host=")
    with psycopg.connect(lines[0]) as conn:
        assert conn.execute("select extversion from pg_extension where extname = 'vector'").fetchone()[0] >= "0.8"


def test_status_start_stop(private_state) -> None:
    assert arc("db", "start", env=private_state).returncode == 0
    assert arc("db", "status", env=private_state).returncode == 0
    assert "stopped" in arc("db", "stop", env=private_state).stdout
    assert arc("db", "status", env=private_state).returncode == 1
    assert "not running" in arc("db", "stop", env=private_state).stdout
    assert arc("db", "url", env=private_state).returncode == 0  # a later command starts it again


def test_killed_server_recovers_on_next_command(private_state) -> None:
    url = arc("db", "url", env=private_state).stdout.strip()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table if not exists survivor (x int)")
        conn.execute("insert into survivor values (42)")
    os.kill(postmaster_pid(private_state), signal.SIGKILL)
    time.sleep(0.5)
    result = arc("db", "url", env=private_state)
    assert result.returncode == 0, result.stderr
    with psycopg.connect(result.stdout.strip()) as conn:
        assert conn.execute("select x from survivor").fetchone()[0] == 42


def test_stale_pid_file_does_not_block_start(private_state) -> None:
    arc("db", "stop", env=private_state)
    pid_file = Path(private_state["ARC_HALO_STATE_DIR"]) / f"pg{config.postgres_version()}" / "postmaster.pid"
    sleeper = subprocess.Popen(["sleep", "30"])  # a live pid that is not a postgres server
    try:
        pid_file.write_text(f"{sleeper.pid}\n{pid_file.parent}\n0\n5432\n{pid_file.parent}\n\n  0  0\nready\n")
        result = arc("db", "start", env=private_state)
        assert result.returncode == 0, result.stderr
    finally:
        sleeper.kill()


def test_killed_build_recovers(private_state) -> None:
    """Kill a build and the server mid-way; the next build finishes and the tables are whole."""
    env = dict(private_state)
    build = subprocess.Popen([ARC, "build", "--exclude", "resource_type:test"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(6)
    build.kill()
    build.wait()
    os.kill(postmaster_pid(env), signal.SIGKILL)
    result = arc("build", "--exclude", "resource_type:test", env=env)
    assert result.returncode == 0, result.stdout[-3000:]
    url = arc("db", "url", env=env).stdout.strip()
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from tensor_dtypes").fetchone()[0] >= 17


def test_neon_target_names_every_missing_variable() -> None:
    result = arc("build", env=clean_env(ARC_HALO_TARGET="neon", NEON_HOST="ep-example.neon.tech"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "arc-halo: error: target 'neon' needs NEON_USER, NEON_PASSWORD, NEON_DATABASE set in the environment (see README, Targets)"
    ]


def test_unknown_target_is_one_line() -> None:
    result = arc("build", env=clean_env(ARC_HALO_TARGET="prod"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "use one of local, neon, ci" in result.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"ARC_HALO_TARGET": "ci", "PGHOST": "db.example.com", "PGUSER": "u", "PGDATABASE": "d", "PGSSLMODE": "disable"},
        {"ARC_HALO_TARGET": "ci", "PGHOST": "db.example.com", "PGUSER": "u", "PGDATABASE": "d"},
    ],
    ids=["disable", "default-prefer"],
)
def test_weak_sslmode_for_remote_host_is_refused(env) -> None:
    result = arc("build", env=clean_env(**env))
    assert result.returncode == 2
    assert "for remote host db.example.com is refused; use sslmode=require or stronger" in result.stderr


def test_neon_target_with_weak_sslmode_is_refused() -> None:
    result = arc("build", env=clean_env(ARC_HALO_TARGET="neon", NEON_HOST="ep-cool.example.com", NEON_USER="u",
                                        NEON_PASSWORD="x", NEON_DATABASE="d", NEON_SSLMODE="disable"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "arc-halo: error: target 'neon' (NEON_HOST, NEON_SSLMODE): sslmode=disable for remote host ep-cool.example.com is refused; "
        "use sslmode=require or stronger"
    ]


def test_neon_target_probes_an_unreachable_host() -> None:
    """A complete neon configuration reaches the connection probe, which reports the host it could not reach."""
    result = arc("build", env=clean_env(ARC_HALO_TARGET="neon", NEON_HOST="127.0.0.1", NEON_USER="u",
                                        NEON_PASSWORD="x", NEON_DATABASE="d"), timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("arc-halo: error: cannot reach neon host 127.0.0.1 (port 5432) after 3 attempts of 15s:")


def test_library_refuses_plaintext_neon_url() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from arc_halo import targets; targets.database_url()"],
        env=clean_env(NEON_DATABASE_URL="postgresql://u:p@ep-x.example.com/db?sslmode=disable"),
        capture_output=True, text=True,
    )
    assert result.returncode != 0 and "NEON_DATABASE_URL: sslmode=disable for remote host ep-x.example.com is refused" in result.stderr


def test_unreachable_host_times_out_with_a_clear_message() -> None:
    """A listener that accepts and never answers stands in for a host that does not respond."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    stop = threading.Event()

    def hold() -> None:
        held = []
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except OSError:
                continue
        for connection in held:
            connection.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        with pytest.raises(ArcHaloError, match=r"cannot reach neon host 127.0.0.1 \(port \d+\) after 2 attempts of 1s"):
            connecting.probe({"host": "127.0.0.1", "port": str(port), "user": "u", "dbname": "d"}, "neon",
                          timeout=1, attempts=2)
    finally:
        stop.set()
        thread.join()
        silent.close()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("host=db.example.com dbname=x sslmode=disable", "sslmode=disable for remote host db.example.com is refused"),
        ("host=db.example.com dbname=x", "sslmode=prefer (default) for remote host db.example.com is refused"),
        ("mysql://db.example.com/x", "must start with postgresql:// (or be key=value pairs)"),
    ],
)
def test_database_url_forms_and_transport(value, message) -> None:
    from arc_halo import conninfo

    with pytest.raises(ArcHaloError, match=message.replace("(", r"\(").replace(")", r"\)")):
        conninfo.parse_database_url(value, "ARC_HALO_DATABASE_URL")
    local = conninfo.parse_database_url("host=/tmp/socket dbname=x", "ARC_HALO_DATABASE_URL")
    assert local.host == "/tmp/socket"


@pytest.mark.skipif(bool(os.environ.get("ARC_HALO_TEST_DATABASE_URL")), reason="restarts the embedded server")
def test_one_process_stops_and_starts_the_server_again_and_again(test_server) -> None:
    """pgserver caches a handle per data directory and returned it without starting the server: the second
    start in one process (a long-running program, the tests' restarts) failed with "did not report ready"."""
    for _ in range(3):
        embedded.stop()
        assert embedded.status() is None
        with psycopg.connect(embedded.ensure_running().url("postgres")) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
