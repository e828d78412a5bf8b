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


def storable_text(name: str, value: str) -> str:
    """`value` if PostgreSQL text can hold it: no NUL character, and encodable in UTF-8 (a lone surrogate,
    such as a half of an emoji from a bad slice or `surrogateescape`d bytes, is not)."""
    position = value.find("\x00")
    if position >= 0:
        raise InvalidInputError(f"{name} {value[:40]!r} contains a NUL character (at {position}), which PostgreSQL "
                                "text cannot hold: remove it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{name} {value[:40]!r} is not valid Unicode: {value[exc.start]!r} at {exc.start} "
                                "cannot be encoded in UTF-8 (a lone surrogate): fix the text") from None
    return value


def as_uuid(name: str, value: object) -> uuid.UUID:
    """An id given as a UUID or its text."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInputError(f"{name} {value!r} is not a UUID") from None
