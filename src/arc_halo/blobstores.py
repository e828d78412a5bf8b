"""The seam between the tensor store and where external tensor bytes live (the seed's blob-storage note
for very large models): the BlobStore protocol, the registry of readers by URI scheme, and the rule that a
store must be one this database is configured to use (external_stores).

The storage side: arc_halo.tensors imports it, never the reverse. `file://` is arc_halo.filestore,
s3://, gs:// and az:// are arc_halo.objectstore (obstore); another scheme plugs in with
`register_store(scheme, store)`.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlparse

import psycopg

from arc_halo import filestore
from arc_halo.errors import InvalidInputError, public_call
from arc_halo.rows import one_value


class BlobStore(Protocol):
    """Where external tensor bytes live (the seam for object storage: S3, GCS, Azure). A store that writes
    has a `uri_prefix` (its root URI), which must be one of the database's external_stores."""

    def write(self, data: memoryview) -> str:
        """Store `data` as a new object; return its URI once the bytes are durable and complete."""

    def read_into(self, uri: str, target: memoryview) -> int:
        """Fill `target` from `uri`; return the number of bytes the object holds."""


_READERS: dict[str, BlobStore] = {"file": filestore.FileStore("/")}  # reads any file:// URI, whatever root wrote it


def register_store(scheme: str, store: BlobStore) -> None:
    """Make tensors at `scheme://` URIs readable (e.g. an S3 or GCS client wrapped as a BlobStore)."""
    if not isinstance(scheme, str) or not scheme.isidentifier() or not callable(getattr(store, "read_into", None)):
        raise InvalidInputError(f"register_store needs a URI scheme such as 's3' and a BlobStore, got {scheme!r}, {store!r}")
    _READERS[scheme] = store


def reader_for(uri: str) -> BlobStore:
    """The store that reads `uri`: file:// always, s3://, gs:// and az:// through arc_halo.objectstore
    (loaded on the first such read, so obstore loads only when an object-store tensor is read), any other
    scheme once registered."""
    if not isinstance(uri, str) or "\x00" in uri:
        raise InvalidInputError(f"a blob URI is text without NUL characters, e.g. s3://bucket/key, got {uri!r}")
    scheme = urlparse(uri).scheme
    if scheme not in _READERS and scheme in ("s3", "gs", "az"):
        from arc_halo import objectstore

        _READERS.update(objectstore.readers())
    try:
        return _READERS[scheme]
    except KeyError:
        raise InvalidInputError(
            f"no blob store for {scheme}:// URIs; register one with arc_halo.blobstores.register_store({scheme!r}, store)"
        ) from None


STORE_NOT_CONFIGURED = ("is not under a store this database is configured to use (external_stores); the schema "
                        "owner registers a store (insert into external_stores (uri_prefix) values ('s3://bucket/prefix')) "
                        "or writes a tensor to it once through the library")


@public_call
def require_configured_store(conn: psycopg.Connection, store: BlobStore) -> None:
    """Refuse a write to a store the database is not configured to use, before any byte is written; a login
    that may change external_stores (the schema owner) registers the store instead."""
    prefix = getattr(store, "uri_prefix", None)
    if not prefix:
        raise InvalidInputError(f"{type(store).__name__} has no uri_prefix, so its objects {STORE_NOT_CONFIGURED}")
    if one_value(conn.execute("select exists (select from external_stores where starts_with(%s, uri_prefix || '/'))",
                              (prefix + "/",))):
        return
    if one_value(conn.execute("select has_table_privilege('external_stores', 'INSERT')")):
        try:
            with conn.transaction():
                conn.execute("insert into external_stores (uri_prefix) values (%s) on conflict do nothing", (prefix,))
            return
        except psycopg.errors.CheckViolation:
            raise InvalidInputError(f"{prefix} cannot be a store: use a plain absolute directory or bucket prefix "
                                    "(no '..', '//', '%', '?', '#' or '@')") from None
    raise InvalidInputError(f"{prefix} {STORE_NOT_CONFIGURED}")
