"""The library's one retry policy, on stamina (a maintained library on tenacity): exponential backoff with
jitter, capped, for what a second try can fix: a Neon compute waking from scale-to-zero, a lock another
session holds, a Neon branch operation still in progress. A failure that persists through every attempt
is raised as it was, for the caller to turn into its one-line message."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import stamina
import stamina.instrumentation

from arc_halo.errors import InvalidInputError
from arc_halo.validation import real_number, whole_number

log = logging.getLogger(__name__)


def _log_retry(details: stamina.instrumentation.RetryDetails) -> None:
    log.debug("retry %s of %s in %.2f s after %s", details.retry_num, details.name, details.wait_for,
              type(details.caused_by).__name__)


# stamina's default hook logs each retry as a WARNING, which Python prints to stderr when the application
# configured no logging: a CLI error must stay one line. Retries are logged at DEBUG instead (--debug).
stamina.instrumentation.set_on_retry_hooks([_log_retry])


def attempts(on: type[Exception] | tuple[type[Exception], ...] | Callable[[Exception], bool], *,
             tries: int | None, first_delay: float, max_delay: float, jitter: float = 0.0,
             within_seconds: float | None = None, growth: float = 2.0) -> Iterable[stamina.Attempt]:
    """`for attempt in attempts(...): with attempt: ...`: the block is run again after a failure `on`
    matches (an exception class, or a predicate), waiting first_delay, then `growth` times longer each
    time up to max_delay, plus up to `jitter` seconds at random; until `tries` attempts (None: no limit)
    or `within_seconds` have passed (None: no limit)."""
    if not (callable(on) or (isinstance(on, tuple) and on and all(isinstance(kind, type) for kind in on))):
        raise InvalidInputError(f"on must be an exception class, a tuple of them or a predicate, got {on!r}")
    if tries is not None:
        whole_number("tries", tries, 1, 1000)
    for name, value in (("first_delay", first_delay), ("max_delay", max_delay), ("jitter", jitter),
                        ("growth", growth), ("within_seconds", within_seconds)):
        if value is not None and not 0 <= real_number(name, value) <= 3600:
            raise InvalidInputError(f"{name} must be between 0 and 3600, got {value}")
    return stamina.retry_context(on=on, attempts=tries, timeout=within_seconds, wait_initial=first_delay,
                                 wait_max=max_delay, wait_jitter=jitter, wait_exp_base=growth)
