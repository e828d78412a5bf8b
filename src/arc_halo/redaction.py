"""Secrets out of messages: the one helper every error, log line and traceback that may quote a URL or a
connection string goes through (ArcHaloError applies it to its own message; the CLI to whatever it prints).

What it hides: the password of any URL (`scheme://user:secret@host` keeps the user), `password=` and  # pragma: allowlist secret
`sslpassword=` in libpq key=value strings and URL queries, signed-URL parameters (S3's X-Amz-*, Azure's
sig=), and the value of every secret environment variable wherever it appears.
"""

from __future__ import annotations

import os
import re

HIDDEN = "***"
# Environment variables whose values are secrets, wherever they turn up in a message.
SECRET_VARIABLES = ("PGPASSWORD", "NEON_PASSWORD", "NEON_API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                    "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_CLIENT_SECRET",
                    "GOOGLE_SERVICE_ACCOUNT_KEY")
# Shorter values would mask ordinary words.
_MIN_SECRET_LENGTH = 4

# scheme://user:password@ : the password ends at the last '@' before the host part.  # pragma: allowlist secret
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/@:'\"]*:)[^\s/'\"]*@")
# password=value in key=value strings (quoted or not) and URL queries (&password=, ?password=).
_KEY_VALUE = re.compile(
    r"(?P<head>\b(?:ssl)?password\s*=\s*|[?&](?:x-amz-signature|x-amz-credential|x-amz-security-token|sig|"
    r"signature|token|access_token|secret|sas)=)(?P<value>'(?:[^'\\]|\\.)*'|[^\s&'\"]+)", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` (or its str()) with credentials replaced by ***."""
    text = text if isinstance(text, str) else str(text)
    text = _URL_PASSWORD.sub(lambda match: f"{match['head']}{HIDDEN}@", text)
    text = _KEY_VALUE.sub(lambda match: f"{match['head']}{HIDDEN}", text)
    for name in SECRET_VARIABLES:
        value = os.environ.get(name, "")
        if len(value) >= _MIN_SECRET_LENGTH:
            text = text.replace(value, HIDDEN)
    return text
