"""Checks of values callers pass in, each raising InvalidInputError with a one-line reason."""

from __future__ import annotations

import json
import numbers
import os
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from arc_halo.errors import InvalidInputError


def whole_number(name: str, value: object, minimum: int, maximum: int) -> int:
    """`value` as an int within [minimum, maximum]; bools and fractions are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(f"{name} must be a whole number, got {value!r}")
    number = int(value)
    if not minimum <= number <= maximum:
        raise InvalidInputError(f"{name} must be between {minimum:,} and {maximum:,}, got {number:,}")
    return number


def bounded_text(name: str, value: object, max_length: int) -> str:
    """A non-empty string of at most `max_length` characters with no control characters."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{name} must be a non-empty string, got {value!r}")
    if len(value) > max_length:
        raise InvalidInputError(f"{name} is {len(value):,} characters long; the limit is {max_length}")
    if any(ord(character) < 32 or character == "\x7f" for character in value):
        raise InvalidInputError(f"{name} {value[:40]!r} contains control characters")
    return value


def storable_text(name: str, value: object) -> str:
    """`value` if it is a string PostgreSQL text can hold: no NUL character, and encodable in UTF-8 (a lone
    surrogate, such as a half of an emoji from a bad slice or `surrogateescape`d bytes, is not)."""
    value = text(name, value)
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


MAX_METRIC_NAME = 250  # training_metrics_metric_name_check, inference_metrics_metric_name_check


def metric_name(name: object) -> str:
    """A metric name both metric tables can store: text of 1 to 250 characters PostgreSQL can hold."""
    if type(name) is not str or not 1 <= len(name) <= MAX_METRIC_NAME:
        shown = f"{len(name)} characters" if isinstance(name, str) else repr(name)
        raise InvalidInputError(f"metric name must be a string of 1 to {MAX_METRIC_NAME} characters, got {shown}")
    return storable_text("metric name", name)


def optional_time(name: str, value: object) -> datetime | None:
    """When a row happened, for a call that may backdate it (`at=`): a datetime with a time zone, or None
    for the server's now()."""
    if value is not None and (not isinstance(value, datetime) or value.utcoffset() is None):
        raise InvalidInputError(f"`{name}` must be a datetime with a time zone (or None for now), got {value!r}")
    return value


def as_uuid(name: str, value: object) -> uuid.UUID:
    """An id given as a UUID or its text."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInputError(f"{name} {value!r} is not a UUID") from None


def optional_uuid(name: str, value: object) -> uuid.UUID | None:
    """An id, or None."""
    return None if value is None else as_uuid(name, value)


def uuids(name: str, value: object) -> list[uuid.UUID]:
    """A list (or tuple) of ids."""
    if not isinstance(value, (list, tuple)):
        raise InvalidInputError(f"{name} must be a list of ids, got {type(value).__name__}")
    return [as_uuid(name, item) for item in value]


def optional_whole_number(name: str, value: object, minimum: int, maximum: int) -> int | None:
    return None if value is None else whole_number(name, value, minimum, maximum)


def real_number(name: str, value: object) -> float:
    """A finite or infinite real number as a float (bools and text are refused)."""
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, numbers.Real):
        raise InvalidInputError(f"{name} must be a real number, got {value!r}")
    try:
        return float(value)
    except OverflowError:
        raise InvalidInputError(f"{name} {value} is too large for a double precision number") from None


def json_object(name: str, value: object) -> str:
    """A dict (or None, meaning empty) as JSON text; every value in it must be JSON (no NaN)."""
    if value is None:
        return "{}"
    if not isinstance(value, dict):
        raise InvalidInputError(f"{name} must be a dict of JSON values, got {type(value).__name__}")
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} holds a value that is not JSON: {exc}") from None


def numeric_array(name: str, value: object) -> np.ndarray:
    """A numpy array of numbers (or what numpy makes one of); text, objects and dates are refused."""
    try:
        result = np.asarray(value) if not isinstance(value, (str, bytes)) else None
    except (TypeError, ValueError, OverflowError):
        result = None
    if result is None or result.dtype.kind in "OUSMm":  # bfloat16 and float8 (ml_dtypes) are kind V
        shown = f"an array of {result.dtype}" if result is not None else type(value).__name__
        raise InvalidInputError(f"{name} must be a numpy array of numbers, got {shown}")
    return result


def optional_duration(name: str, value: object) -> timedelta | None:
    if value is not None and not isinstance(value, timedelta):
        raise InvalidInputError(f"{name} must be a datetime.timedelta (or None), got {value!r}")
    return value


def path(name: str, value: object) -> Path:
    """A filesystem path given as str or os.PathLike."""
    if not isinstance(value, (str, os.PathLike)) or "\x00" in str(value):
        raise InvalidInputError(f"{name} must be a path (str or pathlib.Path) without NUL characters, got {value!r}")
    return Path(value)


def text(name: str, value: object) -> str:
    """A string (any content the caller's next check decides on)."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, got {type(value).__name__}")
    return value


def boolean(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{name} must be True or False, got {value!r}")
    return value


def writable_buffer(name: str, value: object) -> memoryview:
    """A writable memoryview to read bytes into."""
    if not isinstance(value, memoryview) or value.readonly:
        raise InvalidInputError(f"{name} must be a writable memoryview, got {type(value).__name__}")
    return value
