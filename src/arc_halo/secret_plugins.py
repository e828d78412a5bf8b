"""detect-secrets plugins for credential shapes its defaults do not know (loaded by `secret_scan`)."""

from __future__ import annotations

import re

from detect_secrets.plugins.base import RegexBasedDetector


class NeonApiKeyDetector(RegexBasedDetector):
    """Neon API keys (console and neonctl): `napi_` and 40+ letters and digits."""

    secret_type = "Neon API key"  # pragma: allowlist secret (the finding's label)
    denylist = (re.compile(r"\bnapi_[A-Za-z0-9]{40,}\b"),)
