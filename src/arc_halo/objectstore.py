"""External tensor bytes on object storage (s3://, gs://, az://) and in local files (file://), via obstore.

    store = open_store("s3://models/minilm")      # a blobstores.BlobStore: tensors.put(..., store=store)
    tensors.get(conn, tensor_id)                  # reads s3:// URIs without any registration

Credentials and endpoints come from the standard environment variables, read by obstore itself:
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL (an http://
endpoint is allowed because it was asked for); GOOGLE_APPLICATION_CREDENTIALS / GOOGLE_SERVICE_ACCOUNT,
GOOGLE_BASE_URL; AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY (or AZURE_CLIENT_ID/SECRET,
AZURE_STORAGE_USE_EMULATOR). The database keeps only the URI, byte size and SHA-256: no secret.

Uploads are obstore multipart puts with parts sent in parallel; an object appears whole or not at all,
and the tensor's metadata commits only afterwards (tensors.put), so an object no row points to is the
only trace a killed upload can leave. `find_orphans` lists those, `delete_objects` removes them.
"""

from __future__ import annotations

import functools
import math
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

import obstore
import psycopg
from obstore.store import AzureStore, GCSStore, LocalStore, S3Store

from arc_halo import validation
from arc_halo.errors import ArcHaloError, ConfigurationError, InvalidInputError, NotFoundError, first_line
from arc_halo.filestore import FileStore
from arc_halo.rows import one_value

if TYPE_CHECKING:
    from obstore.store import ClientConfig  # a TypedDict of obstore's stubs, not importable at runtime

SCHEMES = ("s3", "gs", "az")
PART_BYTES = 8 * 1024 * 1024   # multipart part size (S3's minimum is 5 MiB)
PARALLEL_PARTS = 8             # parts in flight at once per upload
READ_CHUNK_BYTES = 8 * 1024 * 1024
MAX_AGE = timedelta(days=36_500)  # an orphan age beyond a century is a typo (and past datetime's range)

_ENVIRONMENT_HINTS = {
    "s3": "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and, for a non-AWS server, AWS_ENDPOINT_URL",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS (or GOOGLE_SERVICE_ACCOUNT) and, for an emulator, GOOGLE_BASE_URL",
    "az": "AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY (or AZURE_CLIENT_ID/AZURE_CLIENT_SECRET)",
}


@dataclass(frozen=True)
class Location:
    """An object-store URI split into scheme, bucket (container) and key."""

    scheme: str
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> Location:
        parsed = urlparse(_uri_text(uri))
        if parsed.scheme not in SCHEMES or not parsed.netloc:
            raise InvalidInputError(f"not an object-store URI: {uri!r}; expected s3://bucket/prefix, "
                                    "gs://bucket/prefix or az://container/prefix")
        if parsed.username or parsed.password or parsed.query:
            raise InvalidInputError(f"{parsed.scheme}:// URIs carry no credentials or options; set "
                                    f"{_ENVIRONMENT_HINTS[parsed.scheme]} in the environment instead")
        key = parsed.path.removeprefix("/").rstrip("/")
        if key and any(segment in ("", ".", "..") for segment in key.split("/")):
            # object keys are plain names: an empty, '.' or '..' segment names no object and no prefix
            raise InvalidInputError(f"{uri!r} has an empty, '.' or '..' path segment; write the prefix plainly, "
                                    f"e.g. {parsed.scheme}://{parsed.netloc}/models/llama")
        return cls(parsed.scheme, parsed.netloc, key)

    def uri(self, key: str | None = None) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key if key is None else key}"


def _client_options(scheme: str) -> ClientConfig:
    """obstore refuses plain http unless told; an http:// endpoint set in the environment is that telling
    (a local S3 server such as SeaweedFS or MinIO)."""
    endpoints = {"s3": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"), "gs": ("GOOGLE_BASE_URL",),
                 "az": ("AZURITE_BLOB_STORAGE_URL", "AZURE_STORAGE_ENDPOINT")}[scheme]
    endpoint = next((os.environ[name] for name in endpoints if os.environ.get(name)), "")
    return {"allow_http": True} if endpoint.startswith("http://") else {}


@functools.lru_cache(maxsize=None)
def _bucket_store(scheme: str, bucket: str, environment: frozenset[tuple[str, str]]) -> S3Store | GCSStore | AzureStore:
    """One obstore client per bucket and environment (clients keep their connection pool)."""
    kinds: dict[str, type[S3Store | GCSStore | AzureStore]] = {"s3": S3Store, "gs": GCSStore, "az": AzureStore}
    kind = kinds[scheme]
    try:
        return kind.from_url(f"{scheme}://{bucket}", client_options=_client_options(scheme) or None)
    except obstore.exceptions.BaseError as exc:
        raise ConfigurationError(f"cannot configure {scheme}://{bucket}: {first_line(exc)}; set "
                                 f"{_ENVIRONMENT_HINTS[scheme]}") from None


def _store_for(scheme: str, bucket: str) -> S3Store | GCSStore | AzureStore:
    relevant = frozenset((name, value) for name, value in os.environ.items()
                         if name.startswith(("AWS_", "GOOGLE_", "AZURE_", "AZURITE_")))
    return _bucket_store(scheme, bucket, relevant)


def _object_error(exc: obstore.exceptions.BaseError, uri: str, action: str) -> ArcHaloError:
    scheme = urlparse(uri).scheme
    if "NoSuchBucket" in str(exc) or "ContainerNotFound" in str(exc):
        return NotFoundError(f"{action} {uri} failed: no bucket {urlparse(uri).netloc!r} on this {scheme} endpoint")
    hint = f"; check {_ENVIRONMENT_HINTS[scheme]}" if scheme in _ENVIRONMENT_HINTS else ""
    if isinstance(exc, (obstore.exceptions.PermissionDeniedError, obstore.exceptions.UnauthenticatedError)):
        return ConfigurationError(f"{action} {uri} was refused ({first_line(exc)}){hint}")
    return ConfigurationError(f"{action} {uri} failed: {first_line(exc)}{hint}")


class ObjectStore:
    """A blobstores.BlobStore writing objects `<prefix>/<2 hex>/<uuid>.tensor` under an object-store URI."""

    def __init__(self, base_uri: str):
        self.base = Location.parse(base_uri)
        self._store = _store_for(self.base.scheme, self.base.bucket)

    @property
    def uri_prefix(self) -> str:
        """The root every object of this store lies under (one of the database's external_stores)."""
        return self.base.uri().rstrip("/")

    def write(self, data: memoryview) -> str:
        name = uuid.uuid4().hex
        key = "/".join(part for part in (self.base.key, name[:2], f"{name}.tensor") if part)
        try:  # multipart above PART_BYTES: parts upload in parallel, the object appears only when complete
            obstore.put(self._store, key, data, chunk_size=PART_BYTES, max_concurrency=PARALLEL_PARTS)
        except obstore.exceptions.BaseError as exc:
            raise _object_error(exc, self.base.uri(key), "upload to") from None
        return self.base.uri(key)

    def read_into(self, uri: str, target: memoryview) -> int:
        return read_into(uri, target)


def read_into(uri: str, target: memoryview) -> int:
    """Fill `target` from the object at `uri`; return the object's size. A missing object (or bucket)
    raises FileNotFoundError, which the tensor store reports with the tensor's name.

    One streamed GET: parallel byte ranges (obstore.get_ranges, 8 MiB x 8) read at half its speed from
    the loopback SeaweedFS here (82 vs 159 MB/s, 200 MB); a remote store with slow single connections
    may favour ranges."""
    location = Location.parse(uri)
    validation.writable_buffer("target", target)
    try:
        result = obstore.get(_store_for(location.scheme, location.bucket), location.key)
        filled = 0
        for piece in result.stream(min_chunk_size=READ_CHUNK_BYTES):
            room = max(0, min(len(piece), len(target) - filled))
            target[filled:filled + room] = memoryview(piece)[:room]
            filled += len(piece)  # counts on past the end: a longer object reports its true size
        return filled
    except obstore.exceptions.NotFoundError:
        raise FileNotFoundError(uri) from None
    except obstore.exceptions.BaseError as exc:
        raise _object_error(exc, uri, "reading") from None


class _SchemeReader:
    """Reads any object of one scheme, whichever prefix wrote it (registered with the tensor store)."""

    def write(self, data: memoryview) -> str:
        raise InvalidInputError("a reader cannot write; use objectstore.open_store(uri)")

    def read_into(self, uri: str, target: memoryview) -> int:
        return read_into(uri, target)


def readers() -> dict[str, _SchemeReader]:
    """A reader for each of s3://, gs:// and az://, which the blob-store registry (arc_halo.blobstores)
    takes on the first read of such a URI: this module imports nothing of the tensor store's."""
    return {scheme: _SchemeReader() for scheme in SCHEMES}


def open_store(uri: str) -> ObjectStore | FileStore:
    """The BlobStore for an --external destination: s3://, gs://, az:// or file:///directory (a bare
    path means a local directory)."""
    parsed = urlparse(_uri_text(uri))
    if parsed.scheme in SCHEMES:
        return ObjectStore(uri)
    return FileStore(_local_root(uri))


def _uri_text(uri: object) -> str:
    if not isinstance(uri, str) or "\x00" in uri:
        raise InvalidInputError(f"a store URI is text without NUL characters, e.g. s3://bucket/prefix, got {uri!r}")
    return uri


def _local_root(uri: str) -> Path:
    parsed = urlparse(_uri_text(uri))
    if parsed.scheme not in ("", "file"):
        raise InvalidInputError(f"unsupported external store {uri!r}; use s3://bucket/prefix, "
                                "gs://bucket/prefix, az://container/prefix or file:///directory")
    if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
        raise InvalidInputError(f"file:// URIs name a local path (file:///directory), not a host: {uri!r}")
    if parsed.scheme == "file" and ".." in unquote(parsed.path).split("/"):
        raise InvalidInputError(f"{uri!r} has a '..' path segment; name the directory plainly, e.g. file:///data/tensors")
    return Path(unquote(parsed.path) if parsed.scheme == "file" else uri).resolve()


# ---- orphans: objects no tensor_metadata row points to -------------------------------------------------

@dataclass(frozen=True)
class StoredObject:
    uri: str
    size: int
    last_modified: datetime


def list_objects(prefix_uri: str) -> Iterator[StoredObject]:
    """Every object under `prefix_uri` (s3://, gs://, az:// or file://), with its size and age. A
    malformed prefix or a directory that does not exist is refused here, before any listing."""
    return _list(prefix_uri, *_listing(prefix_uri))


def check_prefix(prefix_uri: str) -> None:
    """Refuse a malformed prefix or a local directory that does not exist (ArcHaloError)."""
    _listing(prefix_uri)


def _listing(prefix_uri: str) -> tuple[S3Store | GCSStore | AzureStore | LocalStore, str | None, Callable[[str], str]]:
    """(store, key prefix, key -> URI) for listing under `prefix_uri`."""
    parsed = urlparse(_uri_text(prefix_uri))
    store: S3Store | GCSStore | AzureStore | LocalStore
    to_uri: Callable[[str], str]
    if parsed.scheme in SCHEMES:
        location = Location.parse(prefix_uri)
        store, prefix = _store_for(location.scheme, location.bucket), location.key or None
        to_uri = location.uri
    else:
        root = _local_root(prefix_uri)
        if not root.is_dir():
            raise NotFoundError(f"no directory {root} (from {prefix_uri}): give the directory the tensors were "
                                "written to")
        store, prefix = LocalStore(prefix=root), None
        to_uri = lambda key: (root / key).as_uri()  # the form FileStore records  # noqa: E731
    return store, prefix, to_uri


def _list(prefix_uri: str, store: S3Store | GCSStore | AzureStore | LocalStore, prefix: str | None,
          to_uri: Callable[[str], str]) -> Iterator[StoredObject]:
    try:
        for batch in obstore.list(store, prefix):
            for meta in batch:
                yield StoredObject(to_uri(meta["path"]), meta["size"], meta["last_modified"])
    except obstore.exceptions.BaseError as exc:
        raise _object_error(exc, prefix_uri, "listing") from None


def _referenced(conn: psycopg.Connection, uris: Sequence[str]) -> set[str]:
    with conn.transaction():
        if one_value(conn.execute("select row_security_active('tensor_metadata')")):
            # Row-level security hides other tenants' tensors, whose objects would look orphaned.
            raise ConfigurationError("finding orphaned objects needs every tenant's tensor_metadata rows, and "
                                     "row-level security hides some from this role; run it as the schema owner")
        rows = conn.execute("select external_uri from tensor_metadata where external_uri = any(%s)", (list(uris),))
        return {row[0] for row in rows}


def find_orphans(conns: psycopg.Connection | Sequence[psycopg.Connection], prefix_uri: str, older_than: timedelta,
                 now: datetime | None = None) -> list[StoredObject]:
    """Objects under `prefix_uri` that no tensor_metadata row of any of `conns`' databases points to and
    that were last written more than `older_than` ago. Branches share objects with their parent, so pass
    every database that may reference them (`branches.referencing_databases`). The age threshold keeps
    uploads in flight (object written, metadata not yet committed) out of the list: make it longer than
    the longest import."""
    databases = [conns] if isinstance(conns, psycopg.Connection) else list(conns) if isinstance(conns, (list, tuple)) else None
    if not databases or not all(isinstance(conn, psycopg.Connection) for conn in databases):
        raise InvalidInputError("find_orphans needs a database connection, or a list of them, to check references "
                                f"in; got {conns!r}")
    if not isinstance(older_than, timedelta) or not timedelta(0) <= older_than <= MAX_AGE:
        raise InvalidInputError(f"older_than must be a timedelta from 0 to {MAX_AGE.days} days, got {older_than!r}")
    if now is not None and (not isinstance(now, datetime) or now.tzinfo is None):
        raise InvalidInputError(f"now must be a datetime with a time zone (or None), got {now!r}")
    cutoff = (now or datetime.now(timezone.utc)) - older_than
    candidates = [item for item in list_objects(prefix_uri) if item.last_modified <= cutoff]
    uris = [item.uri for item in candidates]
    referenced = set().union(*(_referenced(conn, uris) for conn in databases))
    return [item for item in candidates if item.uri not in referenced]


def delete_objects(uris: Sequence[str]) -> None:
    """Remove objects by URI; one request per bucket for object stores."""
    if isinstance(uris, str) or not isinstance(uris, (list, tuple)):  # a lone string would be taken letter by letter
        raise InvalidInputError(f"uris must be a list of object URIs, got {type(uris).__name__}")
    by_bucket: dict[tuple[str, str], list[str]] = {}
    for uri in uris:
        if urlparse(_uri_text(uri)).scheme in SCHEMES:
            location = Location.parse(uri)
            by_bucket.setdefault((location.scheme, location.bucket), []).append(location.key)
        else:
            _local_root(uri).unlink(missing_ok=True)
    for (scheme, bucket), keys in by_bucket.items():
        try:
            obstore.delete(_store_for(scheme, bucket), keys)
        except obstore.exceptions.BaseError as exc:
            raise _object_error(exc, f"{scheme}://{bucket}", "deleting under") from None


def parse_age(text: str) -> timedelta:
    """'90s', '15m', '1h', '2d' (or plain seconds) as a timedelta."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if not isinstance(text, str):
        raise InvalidInputError(f"an age is text such as 30s, 15m, 1h or 2d, got {text!r}")
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
        if not math.isfinite(seconds):
            raise ValueError(text)
    except ValueError:
        raise InvalidInputError(f"not an age: {text!r}; use e.g. 30s, 15m, 1h or 2d") from None
    if seconds < 0:
        raise InvalidInputError(f"an age cannot be negative: {text!r}")
    if seconds > MAX_AGE.total_seconds():
        raise InvalidInputError(f"an age of {text!r} reaches past any object; use at most {MAX_AGE.days}d")
    return timedelta(seconds=seconds)
