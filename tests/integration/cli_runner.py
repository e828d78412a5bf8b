"""The one way the tests run the `arc-halo` command: as a user would, in a subprocess of this venv's
console script, output captured as text."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

ARC_HALO = str(Path(sys.executable).parent / "arc-halo")


def _unshare_works() -> bool:
    return bool(shutil.which("unshare")) and subprocess.run(["unshare", "-n", "true"]).returncode == 0


def cli_environment(url: str | None = None, env: Mapping[str, str] | None = None, without: Iterable[str] = (),
                    **variables: str) -> dict[str, str]:
    """`env` (default: this process's environment) without ARC_HALO_DEBUG (tests read the answers users get)
    and the `without` variables, with ARC_HALO_DATABASE_URL=`url` when given, and `variables` over it."""
    dropped = {"ARC_HALO_DEBUG", *without}
    environment = {key: value for key, value in (os.environ if env is None else env).items() if key not in dropped}
    if url is not None:
        environment["ARC_HALO_DATABASE_URL"] = url
    environment.update(variables)
    return environment


def arc_halo(*args: str, url: str | None = None, env: Mapping[str, str] | None = None, without: Iterable[str] = (),
             isolated: bool = False, timeout: float = 900, **variables: str) -> subprocess.CompletedProcess:
    """Run `arc-halo *args` (see `cli_environment` for the environment); `isolated` runs it in an empty
    network namespace (`unshare -n`) where that works, so nothing it does can leave the machine."""
    command = [ARC_HALO, *args]
    if isolated and _unshare_works():
        command = ["unshare", "-n", *command]
    return subprocess.run(command, env=cli_environment(url, env, without, **variables), capture_output=True,
                          text=True, timeout=timeout)


def start_arc_halo(*args: str, url: str | None = None, env: Mapping[str, str] | None = None,
                   **variables: str) -> subprocess.Popen:
    """`arc-halo *args` started in the background (a test that kills it or reads it while it runs)."""
    return subprocess.Popen([ARC_HALO, *args], env=cli_environment(url, env, **variables), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
