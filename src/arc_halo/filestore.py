"""`file://` tensor bytes: the blob store for a local directory (arc_halo.blobstores has the seam)."""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from urllib.parse import unquote, urlparse

from arc_halo import validation
from arc_halo.errors import InvalidInputError


class FileStore:
    """`file://` objects under a root directory: written to a temporary name, fsynced, then renamed, so a
    file at a final name is always whole. The tensor store verifies the SHA-256 on every read."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = validation.path("root", root).resolve()

    @property
    def uri_prefix(self) -> str:
        return self.root.as_uri().rstrip("/")

    def write(self, data: memoryview) -> str:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidInputError(f"a blob store writes bytes, got {type(data).__name__}")
        name = uuid.uuid4().hex
        path = self.root / name[:2] / f"{name}.tensor"
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path.as_uri()

    def read_into(self, uri: str, target: memoryview) -> int:
        return _read_file_into(_file_path(uri), validation.writable_buffer("target", target))


def _file_path(uri: str) -> Path:
    parsed = urlparse(validation.text("uri", uri))
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise InvalidInputError(f"not a local file URI: {uri}")
    return Path(unquote(parsed.path))


def _read_file_into(path: Path, target: memoryview) -> int:
    with open(path, "rb", buffering=0) as source:
        filled = 0
        while filled < len(target):
            count = source.readinto(target[filled:])
            if not count:
                return filled
            filled += count
        return filled + len(source.read(1))  # one byte more means the file is longer than recorded
