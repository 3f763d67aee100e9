"""The rate at which a host accepted requests: attempts that got a good answer, counted
by their start, per second of the last two seconds in which the host was not paused by a
Retry-After. No I/O, no clock reads.
"""
from __future__ import annotations

import dataclasses
import math

__all__ = ["AcceptedRate"]

#: Good answers are counted per METER_STEP seconds over METER_BUCKETS steps; fewer than
#: RATE_SAMPLES of them, or over less than RATE_SPAN seconds not paused by a Retry-After,
#: say too little about the host's rate to set one: the decrease lowers the window only.
METER_STEP = 0.25
METER_BUCKETS = 8
RATE_SPAN = 0.25
RATE_SAMPLES = 5


@dataclasses.dataclass(slots=True)
class AcceptedRate:
    """Good answers per METER_STEP seconds over METER_BUCKETS steps, and the pauses.

    Example::

        >>> meter = AcceptedRate()
        >>> for n in range(20):
        ...     meter.count(started=n * 0.05, now=n * 0.05 + 0.05)
        >>> round(meter.rate(now=1.0), 1)
        20.0
    """

    first_start: float | None = None
    buckets: list = dataclasses.field(default_factory=lambda: [0] * METER_BUCKETS)
    bucket_start: float = -math.inf
    pauses: list = dataclasses.field(default_factory=list)  # (start, end) of Retry-Afters

    def count(self, started: float, now: float) -> None:
        """Count a good answer at the time its attempt *started*: accepted starts per
        second is what a rate limit bounds, and no attempt starts during a pause."""
        if self.first_start is None or started < self.first_start:
            self.first_start = started
        self._roll(now)
        slot = int((started - self.bucket_start) / METER_STEP) + METER_BUCKETS - 1
        if 0 <= slot < METER_BUCKETS:
            self.buckets[slot] += 1

    def rate(self, now: float) -> float | None:
        """Attempts started per second that got a good answer, over the last two seconds
        less the time the host was paused by a Retry-After, if they are enough to say."""
        if self.first_start is None:
            return None
        self._roll(now)
        count = sum(self.buckets)
        span = self.active_span(now)
        if count < RATE_SAMPLES or span < RATE_SPAN:
            return None
        return count / span

    def active_span(self, now: float) -> float:
        """Seconds of the meter's span in which the host was not paused."""
        if self.first_start is None:
            return 0.0
        since = max(self.bucket_start - (METER_BUCKETS - 1) * METER_STEP, self.first_start)
        paused = sum(max(0.0, min(end, now) - max(start, since)) for start, end in self.pauses)
        return now - since - paused

    def pause(self, start: float, end: float) -> None:
        """The host was told to wait from ``start`` to ``end`` (a Retry-After)."""
        if self.pauses and start <= self.pauses[-1][1]:
            self.pauses[-1] = (self.pauses[-1][0], max(end, self.pauses[-1][1]))
        else:
            self.pauses.append((start, end))
            del self.pauses[:-METER_BUCKETS]

    def _roll(self, now: float) -> None:
        if now - self.bucket_start < METER_STEP:
            return
        steps = (now - self.bucket_start) / METER_STEP
        if steps >= METER_BUCKETS:
            self.buckets = [0] * METER_BUCKETS
            self.bucket_start = now
        else:
            steps = int(steps)
            self.buckets = self.buckets[steps:] + [0] * steps
            self.bucket_start += steps * METER_STEP
