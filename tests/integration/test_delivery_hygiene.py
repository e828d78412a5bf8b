"""Issue 6: the workflow validates offline and pins every action; no tracked file holds a credential."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from arc_halo import config, secret_scan

WORKFLOW = config.project_dir() / ".github" / "workflows" / "deploy-db-schema.yml"


def test_workflow_pins_every_action_to_a_commit() -> None:
    uses = re.findall(r"uses:\s*(\S+)", WORKFLOW.read_text())
    assert uses, "no actions found"
    for action in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action


def test_workflow_deletes_pr_branches_and_gates_production() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    jobs = workflow["jobs"]
    cleanup_steps = jobs["pr-cleanup"]["steps"]
    assert "closed" in jobs["pr-cleanup"]["if"]
    assert any("delete-branch-action" in step.get("uses", "") for step in cleanup_steps)
    assert jobs["deploy"]["environment"] == "production"
    assert jobs["deploy"]["concurrency"]["cancel-in-progress"] is False
    assert workflow["permissions"] == {"contents": "read"}


def test_workflow_never_echoes_a_secret() -> None:
    for line in WORKFLOW.read_text().splitlines():
        if re.search(r"\b(run|echo)\b", line):
            assert "secrets." not in line, line
            assert "outputs.password" not in line, line


def test_workflow_validates_offline() -> None:
    tools = Path(config.project_dir()) / ".venv" / "bin"
    schema = subprocess.run([str(tools / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                             str(WORKFLOW)], capture_output=True, text=True)
    assert schema.returncode == 0, schema.stdout + schema.stderr
    audit = subprocess.run([str(tools / "zizmor"), "--offline", "--no-progress", str(WORKFLOW)],
                           capture_output=True, text=True)
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_tracked_files_hold_no_credentials() -> None:
    assert secret_scan.scan(config.project_dir()) == []


def test_scanner_finds_a_planted_credential(tmp_path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "ok.md").write_text("psql postgresql://user:${NEON_PASSWORD}@ep-cool.neon.tech/db\n"
                                    "postgresql://u:hunter2@db.example.com/x <!-- pragma: allowlist secret -->\n")
    # split, so that this file stays clean
    planted = "postgresql://app:" + "s3cr3tPassw0rd" + "@ep-cool-42.neon.tech/arc"
    neon_key = "napi_" + "k3y" * 20
    (tmp_path / "leak.env").write_text(f"DATABASE=x\nNEON_DATABASE_URL={planted}\nNEON_KEY_IN_A_NOTE {neon_key}\n")
    subprocess.run(["git", "add", "."], cwd=tmp_path, check=True)
    findings = secret_scan.scan(tmp_path)
    assert [(f.path, f.line, f.rule) for f in findings] == [("leak.env", 2, "Basic Auth Credentials"),
                                                           ("leak.env", 3, "Neon API key")]


def test_pr_cleanup_shares_the_pr_s_concurrency_group_and_branches_expire() -> None:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    assert jobs["pr-cleanup"]["concurrency"]["group"] == jobs["pr-branch"]["concurrency"]["group"]
    assert jobs["pr-cleanup"]["concurrency"]["cancel-in-progress"] is True  # ends a run that could recreate it
    create = next(step for step in jobs["pr-branch"]["steps"] if "create-branch-action" in step.get("uses", ""))
    assert "expires_at" in create["with"]
    runs = " ".join(step.get("run", "") for job in jobs.values() for step in job["steps"])
    assert "arc-halo build" in runs and "dbt build" not in runs.replace("arc-halo build", "")
    assert "make pytest-neon" in runs and "pytest -q" not in runs
    for job in ("pr-branch", "deploy"):
        python = next(step for step in jobs[job]["steps"] if "setup-python" in step.get("uses", ""))
        assert python["with"]["cache"] == "pip"


def test_the_upkeep_workflow_is_scheduled_and_runs_the_upkeep() -> None:
    workflow = yaml.safe_load((WORKFLOW.parent / "upkeep.yml").read_text())
    assert workflow[True]["schedule"]  # PyYAML reads the key `on` as True
    runs = " ".join(step.get("run", "") for step in workflow["jobs"]["upkeep"]["steps"])
    assert "arc-halo upkeep run --triggered-by workflow" in runs
