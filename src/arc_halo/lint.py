"""The lint gate: sqlfluff with the dbt templater over the project's SQL and yamllint over its YAML,
zero violations allowed.

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
    tools = Path(sys.executable).parent
    sqlfluff = [str(tools / "sqlfluff"), "lint", "--dialect", "postgres", "--templater", "dbt", "--disable-progress-bar",
                *targets]
    failed = subprocess.run(sqlfluff, cwd=root, env=env).returncode
    if not paths:  # the whole gate: YAML too
        failed |= subprocess.run([str(tools / "yamllint"), "--strict", "-c", ".yamllint.yml", "."], cwd=root).returncode
    return failed
