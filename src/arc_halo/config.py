"""Where the project lives and which PostgreSQL the embedded server runs: project paths and settings.

Which database a command talks to (targets, connection strings, TLS, pooling) lives in `targets` and
`conninfo`.
"""

from __future__ import annotations

import os
from pathlib import Path

from arc_halo.errors import ConfigurationError

LOCAL_DATABASE = "arc_halo"
DEFAULT_POSTGRES_VERSION = 18


def project_dir() -> Path:
    """The dbt project root: ARC_HALO_PROJECT_DIR, else the nearest parent of cwd with dbt_project.yml,
    else the checkout this package was installed from (editable install)."""
    explicit = os.environ.get("ARC_HALO_PROJECT_DIR")
    if explicit:
        return Path(explicit).resolve()
    for candidate in (Path.cwd(), *Path.cwd().parents):
        if (candidate / "dbt_project.yml").is_file() and (candidate / "src" / "arc_halo").is_dir():
            return candidate
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "dbt_project.yml").is_file():
        return checkout
    raise ConfigurationError("cannot find the Arc-Halo project: run from the repository or set ARC_HALO_PROJECT_DIR")


def state_dir() -> Path:
    """Git-ignored local state (embedded data directories) inside the project."""
    return Path(os.environ.get("ARC_HALO_STATE_DIR", project_dir() / ".arc_halo")).resolve()


def postgres_version() -> int:
    raw = os.environ.get("ARC_HALO_PG_VERSION", str(DEFAULT_POSTGRES_VERSION))
    if raw not in ("16", "18"):
        raise ConfigurationError(f"ARC_HALO_PG_VERSION={raw} is not available embedded: use 16 or 18")
    return int(raw)
