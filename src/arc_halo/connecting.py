"""Reaching a database: connects retried through the one retry policy (a Neon compute that scaled to zero
takes a few seconds to wake) and reachability probes that answer in one line instead of hanging."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import psycopg

from arc_halo import retries, validation
from arc_halo.conninfo import check_libpq_transport, connection_string, parsed_conninfo
from arc_halo.errors import InvalidInputError, describe_connection_failure

# Neon scales compute to zero; waking it takes a few seconds, so allow for that before calling a host dead.
NEON_CONNECT_TIMEOUT_SECONDS = 15
NEON_CONNECT_ATTEMPTS = 3
T = TypeVar("T")
MAX_CONNECT_ATTEMPTS = 100
MAX_RETRY_DELAY_SECONDS = 3600

# libpq's answers that no retry changes: a missing database or role, a refused login
PERMANENT_CONNECT_FAILURES = ("does not exist", "authentication failed")


def with_connect_retries(connect: Callable[[], T], attempts: int, first_delay: float, max_delay: float,
                         permanent: tuple[str, ...] = ()) -> T:
    """`connect()`, tried up to `attempts` times with doubling sleeps between (a sleeping Neon compute
    needs a few seconds to wake); an OperationalError whose text has one of `permanent` is raised at once."""
    if not callable(connect):
        raise InvalidInputError(f"connect must be a callable, got {connect!r}")
    validation.whole_number("attempts", attempts, 1, MAX_CONNECT_ATTEMPTS)
    for name, delay in (("first_delay", first_delay), ("max_delay", max_delay)):
        if not 0 <= validation.real_number(name, delay) <= MAX_RETRY_DELAY_SECONDS:
            raise InvalidInputError(f"{name} must be between 0 and {MAX_RETRY_DELAY_SECONDS} seconds, got {delay}")
    def transient(exc: BaseException) -> bool:
        return isinstance(exc, psycopg.OperationalError) and not any(text in str(exc) for text in permanent)

    for attempt in retries.attempts(transient, tries=attempts, first_delay=first_delay, max_delay=max_delay):
        with attempt:
            return connect()
    raise AssertionError("unreachable: the last attempt returns or raises")


def probe(
    conninfo: dict[str, str], label: str,
    timeout: int = NEON_CONNECT_TIMEOUT_SECONDS, attempts: int = NEON_CONNECT_ATTEMPTS,
) -> None:
    """Connect once per attempt with a timeout, so an unreachable or sleeping host gives a clear line
    instead of a hang."""
    if not isinstance(conninfo, dict):
        raise InvalidInputError(f"conninfo must be a dict of libpq keywords, got {type(conninfo).__name__}")
    validation.whole_number("timeout", timeout, 1, MAX_RETRY_DELAY_SECONDS)
    validation.whole_number("attempts", attempts, 1, MAX_CONNECT_ATTEMPTS)
    parsed_conninfo(connection_string(**conninfo), label)
    check_libpq_transport(conninfo, label)
    try:
        # conninfo holds libpq keywords only; mypy cannot know it holds none of psycopg's own options
        with_connect_retries(lambda: psycopg.connect(connect_timeout=timeout, **conninfo).close(),  # type: ignore[arg-type]
                             attempts, 1, 5)
    except psycopg.OperationalError as exc:
        raise describe_connection_failure(exc, connection_string(**conninfo), label,
                                          f"after {attempts} attempts of {timeout}s") from None
