"""Fails the lint gate when a tracked file holds something shaped like a credential.

Rules are deliberately few and specific (connection strings with a password, cloud and Neon API keys,
private keys); examples in docs and tests use hosts under example.com/example.org or ${VAR} placeholders.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

RULES = {
    "connection string with a password": re.compile(
        r"\b(?:postgres(?:ql)?|mysql|redis|amqp|mongodb(?:\+srv)?)://[^\s:/@'\"]+:(?P<secret>[^\s@/'\"]+)@(?P<host>[^\s/:?'\"]+)"
    ),
    "Neon API key": re.compile(r"\bnapi_[A-Za-z0-9]{40,}\b"),
    "AWS access key id": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
}
PLACEHOLDER_HOSTS = (".example.com", ".example.org", "example.com", "example.org")
PLACEHOLDER_SECRETS = re.compile(r"^(?:\[[^\]]*\]|\$\{?[A-Za-z_]+\}?|\{\{.*\}\}|<[^>]*>|\*+|x+)$")


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule} (move it to an environment variable or a secret store)"


def _is_placeholder(match: re.Match) -> bool:
    groups = match.groupdict()
    if "host" in groups and groups["host"] and groups["host"].endswith(PLACEHOLDER_HOSTS):
        return True
    return bool(groups.get("secret") and PLACEHOLDER_SECRETS.match(groups["secret"]))


def scan(root: Path) -> list[Finding]:
    """Findings in the files git tracks under `root`."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout.split(b"\0")
    findings = []
    for name in filter(None, (f.decode() for f in files)):
        path = root / name
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary or unreadable
        for number, line in enumerate(text.splitlines(), start=1):
            for rule, pattern in RULES.items():
                if any(not _is_placeholder(match) for match in pattern.finditer(line)):
                    findings.append(Finding(name, number, rule))
    return findings
