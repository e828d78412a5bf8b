"""The lint gate, zero violations allowed: sqlfluff with the dbt templater over the project's SQL,
yamllint, GitHub's workflow schema and zizmor over the workflow, and a scan for credentials.

The dbt templater compiles every file against a live target, so the embedded server is started
first when the target is local.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from arc_halo import config, dbt, secret_scan

LINTED_FOLDERS = ("models", "macros", "tests", "analyses")


def run(paths: list[str] | None = None) -> int:
    root = config.project_dir()
    targets = paths or [folder for folder in LINTED_FOLDERS if (root / folder).is_dir()]
    dbt.ensure_profile()
    env = {**os.environ, **dbt.target_environment(check_reachable=False)}
    tools = Path(sys.executable).parent
    sqlfluff = [str(tools / "sqlfluff"), "lint", "--dialect", "postgres", "--templater", "dbt", "--disable-progress-bar",
                "--format", os.environ.get("ARC_HALO_SQLFLUFF_FORMAT", "human"), *targets]
    failed = subprocess.run(sqlfluff, cwd=root, env=env).returncode
    if paths:
        return failed
    # The whole gate: YAML, the GitHub workflow (actionlint cannot be installed here), and credentials.
    workflows = sorted(str(p.relative_to(root)) for p in (root / ".github" / "workflows").glob("*.y*ml"))
    for command in (
        [str(tools / "yamllint"), "--strict", "-c", ".yamllint.yml", "."],
        [str(tools / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *workflows],
        [str(tools / "zizmor"), "--offline", "--no-progress", *workflows],
    ):
        failed |= subprocess.run(command, cwd=root).returncode
    findings = secret_scan.scan(root)
    for finding in findings:
        print(finding)
    return failed | bool(findings)
