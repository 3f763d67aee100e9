"""How long each host was held back for politeness, by reason, so a row can say how long its
item waited before its first attempt and why.

A reading per host is a tuple of seconds per reason; a job takes one when it is queued and
one when it first starts, and the difference is its wait. No I/O, no clock reads.
"""
from __future__ import annotations

from typing import Hashable

__all__ = ["REASONS", "WaitClock", "ZERO_READING"]

#: Why a host was held: a Retry-After; its pace lowered after overload signals; a rate (the
#: run's ``rate`` or a ``hosts`` rule's); robots.txt's Crawl-delay; the opening of a host
#: not answered yet.
REASONS = ("retry-after", "backoff", "rate", "crawl-delay", "opening")
_INDEX = {reason: number for number, reason in enumerate(REASONS)}
#: The reading of a host never held (one object, so a test by identity is quick).
ZERO_READING = (0.0,) * len(REASONS)


class WaitClock:
    """Seconds each host has been held, per reason; holds do not overlap (a new one ends the
    one before it).

    Example::

        >>> clock = WaitClock()
        >>> queued = clock.reading("h", now=0.0)
        >>> clock.hold("h", since=0.0, until=1.5, reason="retry-after")
        >>> clock.hold("h", since=1.5, until=1.75, reason="backoff")
        >>> clock.waited(queued, clock.reading("h", now=2.0))
        (1.75, 'retry-after')
    """

    def __init__(self) -> None:
        self._totals: dict[Hashable, list[float]] = {}  # closed holds
        self._open: dict[Hashable, tuple[float, float, int]] = {}  # (since, until, reason)

    def hold(self, host: Hashable, since: float, until: float, reason: str) -> None:
        """``host`` starts no job from ``since`` to ``until`` because of ``reason``."""
        self._close(host, since)
        self._open[host] = (since, until, _INDEX[reason])

    def _close(self, host: Hashable, now: float) -> None:
        current = self._open.pop(host, None)
        if current is not None:
            since, until, reason = current
            totals = self._totals.setdefault(host, [0.0] * len(REASONS))
            totals[reason] += max(0.0, min(until, now) - since)

    def reading(self, host: Hashable, now: float) -> tuple[float, ...]:
        """Seconds ``host`` has been held until ``now``, per reason."""
        totals = self._totals.get(host)
        current = self._open.get(host)
        if current is None:
            return ZERO_READING if totals is None else tuple(totals)
        since, until, reason = current
        reading = list(totals) if totals is not None else [0.0] * len(REASONS)
        reading[reason] += max(0.0, min(until, now) - since)
        return tuple(reading)

    def forget(self, host: Hashable, now: float) -> None:
        """Drop what is kept for ``host`` once no queued job holds a reading of it."""
        current = self._open.get(host)
        self._totals.pop(host, None)
        if current is not None and current[1] <= now:
            del self._open[host]

    @staticmethod
    def waited(queued: tuple[float, ...], started: tuple[float, ...]) -> tuple[float, str]:
        """Seconds held between two readings, and the reason that held longest ("" if none)."""
        if queued is started:
            return 0.0, ""
        spans = [after - before for before, after in zip(queued, started)]
        longest = max(range(len(spans)), key=spans.__getitem__)
        total = sum(spans)
        return (total, REASONS[longest]) if total > 0 else (0.0, "")
