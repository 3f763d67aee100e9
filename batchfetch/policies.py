"""The option families as small frozen value objects: :class:`Timeouts`, :class:`RetryPolicy`
and :class:`Limits`, as urllib3 has ``Timeout`` and ``Retry`` and httpx ``Timeout`` and
``Limits``. :class:`~batchfetch.FetchOptions` keeps the same settings as flat fields, builds
these from them (``options.limits``) and takes them as keywords (``limits=Limits(...)``).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from ._checks import integer, number, parse_status_set
from .errors import OptionError

__all__ = ["DEFAULT_RETRY_ON", "Limits", "RetryPolicy", "Timeouts"]

#: Statuses retried unless ``retry_on`` says otherwise.
DEFAULT_RETRY_ON = frozenset({429, 500, 502, 503, 504})


@dataclasses.dataclass(frozen=True)
class Timeouts:
    """How long one attempt may take, in seconds: to connect, between reads of the answer,
    and in all from its start to the end of the body (the deadline). None waits forever
    there (the deadline still applies, unless it is None too).

    Validated when made: a bad value raises :class:`~batchfetch.errors.OptionError` naming
    the field (``connect``, ``read``, ``deadline``) and the value. In FetchOptions these
    are ``timeout=(connect, read)`` and ``deadline``.

    Example::

        >>> Timeouts(connect=3, read=20)
        Timeouts(connect=3.0, read=20.0, deadline=120.0)
        >>> from batchfetch import FetchOptions
        >>> FetchOptions(timeouts=Timeouts(3, 20, deadline=None)).timeout
        (3.0, 20.0)
        >>> FetchOptions(timeout=5, connect_timeout=1).timeouts
        Timeouts(connect=1.0, read=5.0, deadline=120.0)
    """

    #: Seconds to set up the connection (TCP, TLS, a proxy's CONNECT).
    connect: float | None = 10.0
    #: Seconds the server may stay silent while answering.
    read: float | None = 30.0
    #: Wall-clock seconds for one whole attempt, from its start to the end of the body.
    deadline: float | None = 120.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "deadline"):
            object.__setattr__(self, name, number(name, getattr(self, name), allow_none=True))


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """When a failed attempt is tried again, and how long a row may wait for it.

    The fields are FetchOptions' own (``retries``, ``backoff``...), validated the same way
    when made; ``retry_on`` takes what ``FetchOptions(retry_on=...)`` takes ("429,500-504",
    a set, a range; empty or None: no status is retried) and holds a frozenset.

    Example::

        >>> policy = RetryPolicy(retries=5, retry_on="429,503")
        >>> policy.retries, sorted(policy.retry_on), policy.max_retry_wait
        (5, [429, 503], 60.0)
        >>> from batchfetch import FetchOptions
        >>> FetchOptions(retry_policy=policy).retries
        5
        >>> FetchOptions(retries=0).retry_policy == RetryPolicy(retries=0)
        True
    """

    #: Extra attempts after the first for retryable failures.
    retries: int = 3
    #: Base of the exponential backoff in seconds (with jitter, capped at max_retry_wait).
    backoff: float = 0.5
    #: Statuses that are retried.
    retry_on: Any = DEFAULT_RETRY_ON
    #: Longest wait honoured for Retry-After (and the cap of the backoff), in seconds; also
    #: the most one row waits in all for its throttled retries.
    max_retry_wait: float = 60.0
    #: Extra attempts after 429 answers, which do not count against ``retries``.
    throttled_retries: int = 10
    #: Retry POST/PATCH on timeouts, resets after sending and retryable statuses too.
    retry_non_idempotent: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalised values are set once, here
        set_(self, "retries", integer("retries", self.retries, minimum=0))
        set_(self, "backoff", number("backoff", self.backoff, strictly_positive=False))
        set_(self, "retry_on", parse_status_set(self.retry_on, "retry_on")
             if self.retry_on not in ((), "", None) else frozenset())
        set_(self, "max_retry_wait", number("max_retry_wait", self.max_retry_wait,
                                            strictly_positive=False))
        set_(self, "throttled_retries", integer("throttled_retries", self.throttled_retries,
                                                minimum=0))
        if not isinstance(self.retry_non_idempotent, bool):
            raise OptionError("retry_non_idempotent", self.retry_non_idempotent,
                              "True or False")


@dataclasses.dataclass(frozen=True)
class Limits:
    """How much a run does at once: requests in flight, in flight per host, attempts
    started per second, and items read ahead of the rows yielded.

    The fields are FetchOptions' own, validated the same way when made (None: no limit
    but ``concurrency``; for ``max_pending``, see :attr:`pending_limit`).

    Example::

        >>> limits = Limits(concurrency=64, per_host=4, rate=9.0)
        >>> limits.pending_limit
        256
        >>> limits.divided(3)
        Limits(concurrency=22, per_host=2, rate=3.0, max_pending=85)
        >>> from batchfetch import FetchOptions
        >>> FetchOptions(limits=limits).per_host
        4
    """

    #: Requests in flight at once, across all hosts.
    concurrency: int = 16
    #: Requests in flight at once per host (scheme, name, port). None: only concurrency.
    per_host: int | None = None
    #: Attempts started per second across the run, retries included. None: no limit.
    rate: float | None = None
    #: Items pulled from the input but not yet yielded. None: 4 x concurrency, at least 256.
    max_pending: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalised values are set once, here
        set_(self, "concurrency", integer("concurrency", self.concurrency, minimum=1))
        set_(self, "per_host", integer("per_host", self.per_host, minimum=1, allow_none=True))
        set_(self, "rate", number("rate", self.rate, allow_none=True))
        set_(self, "max_pending", integer("max_pending", self.max_pending, minimum=1,
                                          allow_none=True))

    @property
    def pending_limit(self) -> int:
        """Items pulled from the input but not yet yielded, at most.

        Example::

            >>> Limits().pending_limit, Limits(concurrency=100).pending_limit
            (256, 400)
        """
        return self.max_pending or max(256, 4 * self.concurrency)

    def divided(self, n: int) -> "Limits":
        """The limits each of ``n`` engines runs with when they share these (worker
        processes, distributed workers), so that together they stay within them.

        ``rate`` and ``max_pending`` (this :attr:`pending_limit`) are split so that the n
        parts add up to no more than the whole. The exceptions keep every engine able to
        work: ``concurrency`` and ``per_host`` are rounded up, so each engine may run at
        least one request (64 split three ways is 22 each, 66 in all; a per_host of 2
        split four ways is 1 each), ``max_pending`` is at least 1 and ``rate`` above 0. A
        per_host or rate of None stays None.

        Raises OptionError when ``n`` is not an integer >= 1.

        Example::

            >>> Limits(concurrency=64, per_host=4, rate=9.0, max_pending=30).divided(3)
            Limits(concurrency=22, per_host=2, rate=3.0, max_pending=10)
            >>> Limits(concurrency=2).divided(4).concurrency
            1
        """
        integer("n", n, minimum=1)
        rate = self.rate
        if rate is not None:
            rate /= n
            while rate * n > self.rate:  # float division may round up by a hair
                rate = math.nextafter(rate, 0.0)
            rate = max(rate, math.ulp(0.0))  # a rate of 5e-324 split in two is still > 0
        return Limits(concurrency=math.ceil(self.concurrency / n),
                      per_host=None if self.per_host is None else math.ceil(self.per_host / n),
                      rate=rate,
                      max_pending=max(1, self.pending_limit // n))


#: The FetchOptions keywords that stand for a family's fields.
_FAMILIES = {"timeouts": Timeouts, "retry_policy": RetryPolicy, "limits": Limits}


def flat_keywords(keywords: dict[str, Any]) -> dict[str, Any]:
    """FetchOptions ``keywords`` with each family given (``limits=Limits(...)``) replaced
    by its fields; OptionError for a family that is not one, or given with one of its own
    fields.

    Example::

        >>> flat_keywords({"limits": Limits(rate=2), "retries": 0})
        {'retries': 0, 'concurrency': 16, 'per_host': None, 'rate': 2.0, 'max_pending': None}
    """
    flat = {name: value for name, value in keywords.items() if name not in _FAMILIES}
    for name, family in _FAMILIES.items():
        if name not in keywords:
            continue
        value = keywords[name]
        if not isinstance(value, family):
            raise OptionError(name, value, f"a {family.__name__}")
        if isinstance(value, Timeouts):
            # connect_timeout only ever overrides timeout's connect part: unset here.
            fields = {"timeout": (value.connect, value.read), "connect_timeout": None,
                      "deadline": value.deadline}
        else:
            fields = {field.name: getattr(value, field.name)
                      for field in dataclasses.fields(value)}
        both = [field for field in fields if field in flat]
        if both:
            raise OptionError(name, value, f"a {family.__name__}",
                              f"{both[0]} is given too: give {name} or its fields, not both")
        flat.update(fields)
    return flat
