"""Per-host queues, in-flight caps and cool-downs, and the run-wide start rate.

Pure bookkeeping with no I/O: the dispatcher asks which job may start next,
so a host at its cap or cooling down never blocks the others.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from typing import Generic, Hashable, TypeVar

__all__ = ["HostQueues", "StartRate"]

Job = TypeVar("Job")


class HostQueues(Generic[Job]):
    """Waiting jobs per host, served round-robin under a per-host cap.

    Example::

        >>> queues = HostQueues(per_host=1)
        >>> queues.add("a", "a1"); queues.add("a", "a2"); queues.add("b", "b1")
        >>> queues.take(now=0.0), queues.take(now=0.0), queues.take(now=0.0)
        (('a', 'a1'), ('b', 'b1'), None)
    """

    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        self._waiting: OrderedDict[Hashable, deque[Job]] = OrderedDict()
        self._in_flight: dict[Hashable, int] = {}
        self._cool_until: dict[Hashable, float] = {}

    def __len__(self) -> int:
        return sum(len(jobs) for jobs in self._waiting.values())

    def add(self, host: Hashable, job: Job) -> None:
        """Queue ``job`` behind the other waiting jobs of ``host``."""
        self._waiting.setdefault(host, deque()).append(job)

    def take(self, now: float) -> tuple[Hashable, Job] | None:
        """The next job that may start, or None; the host moves to the back of the line."""
        for host in list(self._waiting):
            if self._in_flight.get(host, 0) >= self.per_host:
                continue
            if self._cool_until.get(host, 0.0) > now:
                continue
            jobs = self._waiting.pop(host)
            job = jobs.popleft()
            if jobs:
                self._waiting[host] = jobs  # re-inserted last: round-robin between hosts
            self._in_flight[host] = self._in_flight.get(host, 0) + 1
            return host, job
        return None

    def finished(self, host: Hashable) -> None:
        """One job of ``host`` is no longer in flight."""
        left = self._in_flight.get(host, 0) - 1
        if left > 0:
            self._in_flight[host] = left
        else:
            self._in_flight.pop(host, None)

    def cool_down(self, host: Hashable, until: float) -> None:
        """Start no job of ``host`` before ``until`` (a Retry-After from the server)."""
        if until > self._cool_until.get(host, 0.0):
            self._cool_until[host] = until

    def cooling_until(self, host: Hashable) -> float:
        """When ``host``'s cool-down ends (0.0 when it has none)."""
        return self._cool_until.get(host, 0.0)

    def next_cool_down_end(self, now: float) -> float | None:
        """The earliest future end of a cool-down that holds back waiting jobs."""
        ends = [self._cool_until[host] for host in self._waiting
                if self._cool_until.get(host, 0.0) > now]
        for host in [host for host, until in self._cool_until.items() if until <= now]:
            del self._cool_until[host]
        return min(ends) if ends else None


class StartRate:
    """At most ``rate`` starts per second, evenly spaced (no bursts).

    Spacing starts by ``1 / rate`` means any one-second window holds at most
    ``rate + 1`` starts; an idle period earns no burst afterwards.

    Example::

        >>> limiter = StartRate(2.0)
        >>> limiter.wait_time(now=10.0), limiter.started(now=10.0), limiter.wait_time(now=10.1)
        (0.0, None, 0.4)
    """

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next_start = float("-inf")

    def wait_time(self, now: float) -> float:
        """Seconds until the next start is allowed (0.0 when it is allowed now)."""
        return max(0.0, round(self._next_start - now, 9))

    def started(self, now: float) -> None:
        """Record a start at ``now``."""
        if self.interval:
            self._next_start = max(now, self._next_start) + self.interval
