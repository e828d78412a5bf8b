"""The lint gate, zero violations allowed: sqlfluff with the dbt templater over the project's SQL,
squawk over migrations/, yamllint, GitHub's workflow schema and zizmor over the workflow, mypy (strict,
over the library and the dbt adapter: [tool.mypy] in pyproject.toml) and a scan for credentials.

Given paths, only those are linted: files in migrations/ by squawk, the others by sqlfluff.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from arc_halo import config, dbt, environments, migrations, secret_scan

LINTED_FOLDERS = ("models", "macros", "tests", "analyses")


def squawk(root: Path, files: list[str]) -> int:
    """squawk (rules in .squawk.toml) over migration files; in GitHub Actions, as annotations."""
    if not files:
        return 0
    command = [str(Path(sys.executable).parent / "squawk"), "--config", ".squawk.toml"]
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return subprocess.run([*command, *files], cwd=root).returncode
    result = subprocess.run([*command, "--reporter", "json", *files], cwd=root, capture_output=True, text=True)
    for finding in json.loads(result.stdout or "[]"):
        # squawk counts lines and columns from 0, GitHub from 1
        print(f"::error file={finding['file']},line={finding['line'] + 1},col={finding['column'] + 1},"
              f"title=squawk {finding['rule_name']}::{finding['message']} {finding.get('help') or ''}".rstrip())
    if result.returncode and not result.stdout.strip():
        print(result.stderr, file=sys.stderr)
    return result.returncode


def sqlfluff(root: Path, paths: list[str]) -> int:
    """The dbt templater compiles every file against a live target (the local server is started)."""
    dbt.ensure_profile()
    env = {**os.environ, **environments.target_environment(check_reachable=False)}
    command = [str(Path(sys.executable).parent / "sqlfluff"), "lint", "--dialect", "postgres", "--templater", "dbt",
               "--disable-progress-bar", "--format", os.environ.get("ARC_HALO_SQLFLUFF_FORMAT", "human"), *paths]
    return subprocess.run(command, cwd=root, env=env).returncode


def _is_migration(root: Path, path: str) -> bool:
    resolved = Path(path).resolve()
    return resolved.suffix == ".sql" and resolved.parent == migrations.folder(root).resolve()


def run(paths: list[str] | None = None) -> int:
    root = config.project_dir()
    if paths:
        migration_files = [str(Path(p).resolve().relative_to(root.resolve())) for p in paths if _is_migration(root, p)]
        others = [p for p in paths if not _is_migration(root, p)]
        return (sqlfluff(root, others) if others else 0) | squawk(root, migration_files)
    failed = sqlfluff(root, [folder for folder in LINTED_FOLDERS if (root / folder).is_dir()])
    failed |= squawk(root, sorted(str(p.relative_to(root)) for p in migrations.folder(root).glob("*.sql")))
    # The whole gate: YAML, the GitHub workflow (actionlint cannot be installed here), types, credentials.
    tools = Path(sys.executable).parent
    workflows = sorted(str(p.relative_to(root)) for p in (root / ".github" / "workflows").glob("*.y*ml"))
    for command in (
        [str(tools / "yamllint"), "--strict", "-c", ".yamllint.yml", "."],
        [str(tools / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *workflows],
        [str(tools / "zizmor"), "--offline", "--no-progress", *workflows],
        [str(tools / "mypy")],
    ):
        failed |= subprocess.run(command, cwd=root).returncode
    findings = secret_scan.scan(root)
    for finding in findings:
        print(finding)
    return failed | bool(findings)
