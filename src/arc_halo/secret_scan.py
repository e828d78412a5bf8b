"""Fails the lint gate when a tracked file holds something shaped like a credential: detect-secrets (Yelp's
scanner, every default plugin and filter) over the files git tracks, plus the one credential shape it does
not know, Neon API keys (`secret_plugins.py`).

A line that only looks like a secret (a documented placeholder, a throwaway test server's key) says so
with detect-secrets' inline marker `pragma: allowlist secret`, so every exception is visible where it is.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from detect_secrets import SecretsCollection
from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.settings import default_settings, get_settings

PLUGINS = Path(__file__).with_name("secret_plugins.py")


@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    rule: str

    def __str__(self) -> str:
        return (f"{self.path}:{self.line}: {self.rule} (move it to an environment variable or a secret store; "
                "a placeholder says `pragma: allowlist secret` on its line)")


def scan(root: Path) -> list[Finding]:
    """Findings in the files git tracks under `root`, in path and line order."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout.split(b"\0")
    files = [str(root / name.decode()) for name in listed if name and (root / name.decode()).is_file()]
    with default_settings():
        get_settings().configure_plugins([{"name": "NeonApiKeyDetector", "path": f"file://{PLUGINS.resolve()}"}])
        get_mapping_from_secret_type_to_class.cache_clear()  # detect-secrets caches the plugins it knows
        secrets = SecretsCollection(root=str(root))
        secrets.scan_files(*files, num_processors=1)
    return sorted({Finding(str(Path(name).relative_to(root) if Path(name).is_absolute() else name),
                           secret.line_number, secret.type) for name, secret in secrets})
