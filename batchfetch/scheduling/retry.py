"""When to retry an attempt and how long to wait first: backoff and Retry-After.

Pure functions of the options and one attempt's outcome; no I/O, no clock reads.
"""
from __future__ import annotations

import dataclasses
import email.utils
import random
from datetime import timezone

from ..config import FetchOptions
from ..kinds import NEVER_SENT_ERRORS, TRANSIENT_ERRORS, ErrorKind
from ..methods import IDEMPOTENT_METHODS
from ..transport.base import Outcome
from .pace import THROTTLED_STATUS

__all__ = ["RetryDecision", "decide", "parse_retry_after", "backoff_delay"]

#: Statuses whose Retry-After pauses the whole host.
COOL_DOWN_STATUSES = frozenset({429, 503})


@dataclasses.dataclass(frozen=True)
class RetryDecision:
    """``retry``: try again after ``wait`` seconds; ``cool_down``: pause the host as long.

    ``message`` explains a refusal to wait (a Retry-After beyond max_retry_wait);
    ``throttled``: a retry of a 429 that does not count against ``retries``.
    """

    retry: bool
    wait: float = 0.0
    cool_down: bool = False
    message: str = ""
    throttled: bool = False


NO_RETRY = RetryDecision(False)


def parse_retry_after(value: str | None, now_epoch: float) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or an HTTP date).

    Example::

        >>> parse_retry_after("120", now_epoch=0.0)
        120.0
        >>> parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", now_epoch=30.0)
        30.0
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now_epoch)


def backoff_delay(options: FetchOptions, attempts: int, rng: random.Random) -> float:
    """Exponential backoff with equal jitter, capped at ``max_retry_wait``.

    After attempt n the wait is between half and all of ``backoff * 2 ** (n - 1)``.
    """
    ceiling = min(options.max_retry_wait, options.backoff * 2 ** (attempts - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def decide(options: FetchOptions, method: str, outcome: Outcome, attempts: int,
           reused_connection: bool, now_epoch: float, rng: random.Random,
           throttled: int = 0, throttled_wait: float = 0.0,
           retries: int | None = None) -> RetryDecision:
    """Whether the attempt just made (the ``attempts``-th) should be tried again.

    Idempotent methods retry transient errors and ``retry_on`` statuses. POST,
    PATCH and other non-idempotent methods retry only when the server cannot
    have acted on them (connect errors, a reset before any response byte on a
    reused keep-alive connection) or when it asked with 429/503 and Retry-After,
    unless ``retry_non_idempotent`` is set.

    A 429 is a *throttled* retry: the run is slowing down for the host, so it does not
    count against ``retries``; ``throttled`` of them were made so far, waiting
    ``throttled_wait`` seconds in all, and a row stops after ``throttled_retries``
    of them or once its waits would pass ``max_retry_wait`` in all. ``retries``, when
    given, replaces ``options.retries`` (a ``hosts`` rule's).
    """
    idempotent = method in IDEMPOTENT_METHODS or options.retry_non_idempotent
    if outcome.status == THROTTLED_STATUS and outcome.error in ("", ErrorKind.HTTP) and (
            outcome.status in options.retry_on and outcome.status not in options.ok_status):
        return _throttled(options, outcome, idempotent, throttled, throttled_wait, now_epoch,
                          rng)
    if attempts - throttled > (options.retries if retries is None else retries):
        return NO_RETRY
    if outcome.status is None or outcome.error not in ("", ErrorKind.HTTP):
        if outcome.error in NEVER_SENT_ERRORS or (
                outcome.error == ErrorKind.RESET and outcome.status is None and reused_connection):
            return RetryDecision(True, backoff_delay(options, attempts, rng))
        if idempotent and outcome.error in TRANSIENT_ERRORS:
            return RetryDecision(True, backoff_delay(options, attempts, rng))
        return NO_RETRY
    if outcome.status in options.ok_status or outcome.status not in options.retry_on:
        return NO_RETRY
    asked = parse_retry_after(outcome.retry_after, now_epoch)
    if asked is not None and asked > options.max_retry_wait:
        return _too_long(outcome, asked, options)
    cool_down = asked is not None and outcome.status in COOL_DOWN_STATUSES
    if not idempotent and not cool_down:
        return NO_RETRY
    wait = asked if asked is not None else backoff_delay(options, attempts, rng)
    return RetryDecision(True, wait, cool_down=cool_down)


def _throttled(options: FetchOptions, outcome: Outcome, idempotent: bool, throttled: int,
               throttled_wait: float, now_epoch: float, rng: random.Random) -> RetryDecision:
    asked = parse_retry_after(outcome.retry_after, now_epoch)
    if asked is not None and asked > options.max_retry_wait:
        return _too_long(outcome, asked, options)
    if not idempotent and asked is None:
        return NO_RETRY
    if throttled >= options.throttled_retries:
        return RetryDecision(False, message=(
            f"still throttled after {throttled} throttled retries "
            f"(throttled_retries={options.throttled_retries})"))
    wait = asked if asked is not None else backoff_delay(options, throttled + 1, rng)
    if throttled and throttled_wait + wait > options.max_retry_wait:
        return RetryDecision(False, message=(
            f"still throttled after {throttled} throttled retries and {throttled_wait:.1f} s "
            f"of waiting (max_retry_wait={options.max_retry_wait:g} s in all)"))
    return RetryDecision(True, wait, cool_down=asked is not None, throttled=True)


def _too_long(outcome: Outcome, asked: float, options: FetchOptions) -> RetryDecision:
    """No retry: the server's Retry-After asks for more than max_retry_wait."""
    return RetryDecision(False, message=(
        f"Retry-After {outcome.retry_after.strip()} asks for {asked:g} s, more than "
        f"max_retry_wait={options.max_retry_wait:g} s"))
