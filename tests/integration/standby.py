"""A real hot standby streamed from the test server: `pg_basebackup -R -X stream` of the embedded
primary with its own binaries, then `postgres` on the copy, on its own port and socket directory.

The embedded server's pg_hba.conf trusts local replication connections. As root, pgserver runs the
cluster as the `pgserver` user; the standby's folders belong to that user and it runs as that user too.
It must allow as many connections as the primary (a hot standby refuses to start otherwise); it keeps
less shared memory.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from arc_halo import embedded

STANDBY_SETTINGS = {"shared_buffers": "128MB", "hot_standby": "on", "logging_collector": "off"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _system_user() -> str | None:
    """The user the embedded server runs as when this process is root, else None (this user)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("pgserver")
    except KeyError:
        return None
    return "pgserver"


class HotStandby:
    """A streaming standby of the embedded server at `primary`; `url(database)` connects to it."""

    def __init__(self, primary: embedded.ServerInfo):
        self.primary = primary
        self.port = _free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="arc-halo-standby-"))
        self.data_dir = self.directory / "data"
        self.socket_dir = self.directory / "socket"
        self.socket_dir.mkdir()
        self.user = _system_user()
        if self.user:
            for path in (self.directory, self.socket_dir):
                shutil.chown(path, self.user)
        bin_dir = embedded.bin_dir(primary.version)
        subprocess.run([str(bin_dir / "pg_basebackup"), "-h", str(primary.socket_dir), "-p", "5432", "-U", "postgres",
                        "-D", str(self.data_dir), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync"],
                       check=True, capture_output=True, text=True, user=self.user, timeout=600)
        settings = [item for name, value in STANDBY_SETTINGS.items() for item in ("-c", f"{name}={value}")]
        self.log = open(self.directory / "standby.log", "w")  # noqa: SIM115 - closed in stop()
        if self.user:
            shutil.chown(self.directory / "standby.log", self.user)
        self.process = subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port), "-k", str(self.socket_dir),
             "-h", "", *settings],
            stdout=self.log, stderr=subprocess.STDOUT, user=self.user, cwd=self.directory)
        self._wait_until_ready()

    def url(self, database: str) -> str:
        return make_conninfo(host=str(self.socket_dir), port=self.port, user="postgres", dbname=database)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the standby exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2) as conn:
                    if conn.execute("select pg_is_in_recovery()").fetchone()[0]:
                        return
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the standby did not accept connections: {self.log_tail()}")
            time.sleep(0.2)

    def wait_for_replay(self, timeout: float = 120) -> None:
        """Return once the standby has replayed everything the primary had written when called."""
        with psycopg.connect(self.primary.url("postgres"), autocommit=True) as primary:
            target = primary.execute("select pg_current_wal_lsn()").fetchone()[0]
        self.wait_until("pg_last_wal_replay_lsn() >= %s::pg_lsn", target, timeout)

    def wait_for_receipt(self, timeout: float = 120) -> None:
        """Return once the standby has received (not necessarily replayed) what the primary has written."""
        with psycopg.connect(self.primary.url("postgres"), autocommit=True) as primary:
            target = primary.execute("select pg_current_wal_lsn()").fetchone()[0]
        self.wait_until("pg_last_wal_receive_lsn() >= %s::pg_lsn", target, timeout)

    def wait_until(self, condition: str, lsn: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            while not conn.execute(f"select {condition}", (lsn,)).fetchone()[0]:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the standby did not reach {lsn} in {timeout}s: {self.log_tail()}")
                time.sleep(0.1)

    def log_tail(self) -> str:
        path = self.directory / "standby.log"
        return path.read_text()[-2000:] if path.exists() else "(no log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: ends the sessions, no checkpoint wait
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        shutil.rmtree(self.directory, ignore_errors=True)
