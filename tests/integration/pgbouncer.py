"""A real PgBouncer (Debian's `pgbouncer` package) in transaction mode in front of the test server.

It listens on a free loopback port and reaches the embedded server through its Unix socket directory
(or the host and port of ARC_HALO_TEST_DATABASE_URL). Every (database, user) pair gets ONE server
connection, so two clients always alternate on the same server connection: what one leaves behind on
it, the other meets. Settings are PgBouncer's defaults otherwise (no reset query in transaction mode),
as on a hosted pooler.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

INSTALL_HINT = ("PgBouncer is not installed: `apt-get install -y pgbouncer` (Debian; `.ci/run` does this) "
                "to run the pooler tests")


def executable() -> str | None:
    return shutil.which("pgbouncer") or next(
        (path for path in ("/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer") if os.access(path, os.X_OK)), None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PgBouncer:
    def __init__(self, admin_url: str, users: list[str], pool_size: int = 1):
        server = conninfo_to_dict(admin_url)
        self.port = _free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="arc-halo-pgbouncer-"))
        host, port = server.get("host") or "/tmp", server.get("port") or "5432"
        (self.directory / "users.txt").write_text("".join(f'"{user}" ""\n' for user in users))
        (self.directory / "pgbouncer.ini").write_text(f"""\
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.directory / 'users.txt'}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 50
ignore_startup_parameters = extra_float_digits
logfile = {self.directory / 'pgbouncer.log'}
pidfile = {self.directory / 'pgbouncer.pid'}
""")
        command = [executable(), str(self.directory / "pgbouncer.ini")]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root; run it as the embedded server's user
            user = "pgserver" if _user_exists("pgserver") else "nobody"
            shutil.chown(self.directory, user)
            for item in self.directory.iterdir():
                shutil.chown(item, user)
            command[1:1] = ["-u", user]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # logs to logfile
        self._wait_until_ready(users[0], server.get("dbname") or "postgres")

    def url(self, database: str, user: str) -> str:
        return make_conninfo(host="127.0.0.1", port=self.port, dbname=database, user=user)

    def _wait_until_ready(self, user: str, database: str) -> None:
        deadline = time.monotonic() + 15
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.process.returncode}: {self.log()}")
            try:
                with psycopg.connect(self.url(database, user), connect_timeout=2, prepare_threshold=None):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"pgbouncer did not answer on port {self.port}: {self.log()}") from None
                time.sleep(0.1)

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text()[-2000:] if path.exists() else "(no log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
