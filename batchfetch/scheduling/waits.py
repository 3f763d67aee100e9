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
#: The reading of a host never held. Readings are shared tuples while no hold is open, so
#: a job whose host was not held while it waited is told by identity, at no cost.
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
        self._totals: dict[Hashable, tuple[float, ...]] = {}  # closed holds
        self._open: dict[Hashable, tuple[float, float, int]] = {}  # (since, until, reason)

    def hold(self, host: Hashable, since: float, until: float, reason: str) -> None:
        """``host`` starts no job from ``since`` to ``until`` because of ``reason``."""
        self.release(host, since)
        self._open[host] = (since, until, _INDEX[reason])

    def release(self, host: Hashable, now: float) -> None:
        """End ``host``'s hold at ``now`` if it has not ended by then."""
        current = self._open.pop(host, None)
        if current is not None:
            since, until, reason = current
            totals = list(self._totals.get(host, ZERO_READING))
            totals[reason] += max(0.0, min(until, now) - since)
            self._totals[host] = tuple(totals)

    def reading(self, host: Hashable, now: float) -> tuple[float, ...]:
        """Seconds ``host`` has been held until ``now``, per reason."""
        current = self._open.get(host)
        if current is None:
            return self._totals.get(host, ZERO_READING)
        since, until, reason = current
        if until <= now:
            self.release(host, now)
            return self._totals[host]
        reading = list(self._totals.get(host, ZERO_READING))
        reading[reason] += max(0.0, now - since)
        return tuple(reading)

    def forget(self, host: Hashable) -> None:
        """Drop what is kept for ``host``: no job of it is queued or in flight."""
        self._totals.pop(host, None)
        self._open.pop(host, None)

    @staticmethod
    def waited(queued: tuple[float, ...], started: tuple[float, ...]) -> tuple[float, str]:
        """Seconds held between two readings, and the reason that held longest ("" if none)."""
        if queued is started:
            return 0.0, ""
        spans = [after - before for before, after in zip(queued, started)]
        longest = max(range(len(spans)), key=spans.__getitem__)
        total = sum(spans)
        return (total, REASONS[longest]) if total > 0 else (0.0, "")
