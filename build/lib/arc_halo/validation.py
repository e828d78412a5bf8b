"""Checks of values callers pass in, each raising InvalidInputError with a one-line reason."""

from __future__ import annotations

import numbers
import uuid

from arc_halo.errors import InvalidInputError


def whole_number(name: str, value: object, minimum: int, maximum: int) -> int:
    """`value` as an int within [minimum, maximum]; bools and fractions are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(f"{name} must be a whole number, got {value!r}")
    if not minimum <= value <= maximum:
        raise InvalidInputError(f"{name} must be between {minimum:,} and {maximum:,}, got {value:,}")
    return int(value)


def bounded_text(name: str, value: object, max_length: int) -> str:
    """A non-empty string of at most `max_length` characters with no control characters."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{name} must be a non-empty string, got {value!r}")
    if len(value) > max_length:
        raise InvalidInputError(f"{name} is {len(value):,} characters long; the limit is {max_length}")
    if any(ord(character) < 32 or character == "\x7f" for character in value):
        raise InvalidInputError(f"{name} {value[:40]!r} contains control characters")
    return value


def as_uuid(name: str, value: object) -> uuid.UUID:
    """An id given as a UUID or its text."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInputError(f"{name} {value!r} is not a UUID") from None
