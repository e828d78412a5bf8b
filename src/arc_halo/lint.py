"""The lint gate: sqlfluff with the dbt templater over the project's SQL, zero violations allowed.

The dbt templater compiles every file against a live target, so the embedded server is started
first when the target is local.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from arc_halo import config, dbt

LINTED_FOLDERS = ("models", "macros", "tests", "analyses")


def run(paths: list[str] | None = None) -> int:
    root = config.project_dir()
    targets = paths or [folder for folder in LINTED_FOLDERS if (root / folder).is_dir()]
    dbt.ensure_profile()
    env = {**os.environ, **dbt.target_environment(probe=False)}
    sqlfluff = Path(sys.executable).parent / "sqlfluff"
    command = [str(sqlfluff), "lint", "--dialect", "postgres", "--templater", "dbt", "--disable-progress-bar", *targets]
    return subprocess.run(command, cwd=root, env=env).returncode
