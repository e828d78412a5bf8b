"""The import's one error type."""

from __future__ import annotations

from arc_halo.errors import InvalidInputError


class ModelImportError(InvalidInputError):
    """The directory is not an importable model; the message says what to fix."""
