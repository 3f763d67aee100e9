"""Per-host queues, in-flight caps, cool-downs and connection reuse, and the start rate.

Pure bookkeeping with no I/O: the dispatcher asks which job may start next,
so a host at its cap or cooling down never blocks the others.
"""
from __future__ import annotations

import heapq
import itertools
import math
from collections import OrderedDict, deque
from typing import Generic, Hashable, TypeVar

from .waits import WaitClock

__all__ = ["HostQueues", "StartRate"]

Job = TypeVar("Job")

#: Requests in flight to a host before its first answer, doubled every OPENING_STEP s.
OPENING_WINDOW = 16
OPENING_STEP = 0.01


class HostQueues(Generic[Job]):
    """Waiting jobs per host, started oldest first under a per-host cap and a connection budget.

    The next job is the oldest waiting one whose host is below its cap and not
    cooling down, so a capped or cooling host never blocks the others and, on an
    input that interleaves hosts, the jobs in flight are a window of the input with
    each host's share of it.

    Each host's pool keeps as many connections as the host ever had jobs in flight
    at once (its *warm* count). Once the warm counts add up to ``connections`` (the
    run's concurrency), opening another connection exceeds that budget, so:

    - the oldest job of a host with an idle warm connection goes first, so a slot
      freed by one host does not open a connection to a host whose pool is busy
      while idle ones wait elsewhere; but never ahead of a job more than
      ``connections`` places older, so one host's stream of jobs cannot keep
      another host's job waiting for long;
    - a host whose connections are all busy, with no more jobs waiting than it has
      in flight, is held back for up to ``reuse_wait`` seconds, or until one of them
      comes free, while younger jobs of other hosts go on: near the end of a run,
      hosts whose last jobs lag behind would otherwise open connections they use
      once. A host with more work than that opens connections as before, and once
      its wait is over, a host may open connections until one of its own comes free,
      so slow responses cost it one wait, not one per connection.

    A host never started before opens with at most ``OPENING_WINDOW`` requests in
    flight, doubled every ``OPENING_STEP`` seconds until it answers: its first answer
    may be a 429, and a run at ``-c 100`` would otherwise have drawn 90 of them at
    once from an API allowing a burst of 10. On loopback that costs a latency-bound
    run about 0.4 %; over a network, where the first answer takes a round trip, the
    window is wide open long before it comes.

    With ``open_by_time=False`` (adaptive pacing) the opening window stays until the
    host answers, and the pacer's slow start takes it from there.

    A host's own cap (``limit``, the pacer's window) and spacing between starts
    (``space``) come on top of ``per_host``.

    The transport holds every connection to the same budget: opening one past it
    closes the connection idle longest, whatever its host. The warm counts follow
    it: opening a connection past the budget takes one from the host whose idle
    connection has waited longest, so on an input that cycles through more hosts
    than the budget (W6), a freed slot goes to the host whose connection just came
    free (within the round above) instead of closing it to open another. A host with
    nothing in flight and nothing waiting is forgotten but for its warm count, kept
    while its connections are; memory stays bounded by what is pending.

    Hosts are kept in heaps by the age of their oldest job; entries go stale when
    that job starts or the host reaches its cap, and are dropped when they surface.

    Example::

        >>> queues = HostQueues(per_host=1)
        >>> queues.add("a", "a1"); queues.add("a", "a2"); queues.add("b", "b1")
        >>> queues.take(now=0.0), queues.take(now=0.0), queues.take(now=0.0)
        (('a', 'a1'), ('b', 'b1'), None)
    """

    def __init__(self, per_host: int, connections: int | None = None,
                 reuse_wait: float = 0.25, clock: WaitClock | None = None,
                 open_by_time: bool = True) -> None:
        self.per_host = per_host
        self.open_by_time = open_by_time
        self.clock = clock  # told of every cool-down, so rows can say how long they waited
        self.connections = connections
        self.reuse_wait = reuse_wait
        self._waiting: dict[Hashable, deque[tuple[int, Job]]] = {}
        self._count = 0
        self._sequence = itertools.count()
        self._ready: list[tuple[int, Hashable]] = []       # (oldest job, host)
        self._warm_ready: list[tuple[int, Hashable]] = []  # the same, hosts with an idle connection
        self._in_flight: dict[Hashable, int] = {}
        self._warm: dict[Hashable, int] = {}
        self._warm_total = 0
        self._drained: dict[Hashable, int] = {}  # hosts with only idle connections: warm counts
        # Hosts with an idle connection (warm above in flight), the longest idle first.
        self._idle: OrderedDict[Hashable, None] = OrderedDict()
        self._cool_until: dict[Hashable, float] = {}
        self._cool_reason: dict[Hashable, str] = {}  # one of waits.REASONS
        self._cooling: set[Hashable] = set()  # hosts off the heaps until their cool-down ends
        self._caps: dict[Hashable, int] = {}  # hosts' own caps below per_host
        self._opening: dict[Hashable, float] = {}  # hosts not answered yet: their first start
        self._spaced_until: dict[Hashable, float] = {}  # spacing asked for during an opening
        self._held_until: dict[Hashable, float] = {}  # hosts off the heaps, waiting to reuse
        self._waited: set[Hashable] = set()  # hosts whose wait ran out: they may open more

    def __len__(self) -> int:
        return self._count

    def add(self, host: Hashable, job: Job) -> None:
        """Queue ``job`` behind every job already waiting."""
        jobs = self._waiting.get(host)
        if jobs is None:
            jobs = self._waiting[host] = deque()
            if self._drained and host in self._drained:
                self._warm[host] = self._drained.pop(host)
        sequence = next(self._sequence)
        jobs.append((sequence, job))
        self._count += 1
        if len(jobs) == 1 and host not in self._cooling and host not in self._held_until:
            self._offer(host, sequence)

    def _offer(self, host: Hashable, oldest: int) -> None:
        heapq.heappush(self._ready, (oldest, host))
        if self._in_flight.get(host, 0) < self._warm.get(host, 0):
            heapq.heappush(self._warm_ready, (oldest, host))
        if len(self._ready) + len(self._warm_ready) > 4 * len(self._waiting) + 64:
            self._compact()

    def _startable(self, oldest: int, host: Hashable, idle_warm: bool) -> bool:
        jobs = self._waiting.get(host)
        in_flight = self._in_flight.get(host, 0)
        return (jobs is not None and jobs[0][0] == oldest and host not in self._cooling
                and host not in self._held_until and in_flight < self._caps.get(host, self.per_host)
                and (not idle_warm or in_flight < self._warm.get(host, 0)))

    def _compact(self) -> None:
        """Drop stale entries, so the heaps stay as small as the hosts waiting."""
        self._ready = list(set(entry for entry in self._ready
                               if self._startable(*entry, idle_warm=False)))
        self._warm_ready = list(set(entry for entry in self._warm_ready
                                    if self._startable(*entry, idle_warm=True)))
        heapq.heapify(self._ready)
        heapq.heapify(self._warm_ready)

    def _first(self, heap: list[tuple[int, Hashable]], idle_warm: bool) -> Hashable | None:
        """The host on top of ``heap`` that may start now, dropping entries that may not.

        A dropped host is offered again when it may start: by finished() below its cap,
        by the end of its cool-down or hold, or by take() when its next job becomes its
        oldest.
        """
        while heap:
            oldest, host = heap[0]
            if self._startable(oldest, host, idle_warm):
                return host
            heapq.heappop(heap)
        return None

    def take(self, now: float) -> tuple[Hashable, Job] | None:
        """The next job that may start, or None."""
        if self._cooling or self._held_until:
            self._end_waits(now)
        while True:
            oldest = self._first(self._ready, idle_warm=False)
            if oldest is None:
                return None
            host = self._host_to_start(oldest, now)
            if host is not None:
                break
        jobs = self._waiting[host]
        _, job = jobs.popleft()
        self._count -= 1
        in_flight = self._in_flight[host] = self._in_flight.get(host, 0) + 1
        if in_flight == 1 and host not in self._warm and host not in self._opening:
            self._opening[host] = now
        if host in self._opening:
            self._open_gradually(host, in_flight, now)
        warm = self._warm.get(host, 0)
        if in_flight > warm:  # a new connection
            self._warm[host] = in_flight
            self._warm_total += 1
            if self.connections is not None and self._warm_total > self.connections:
                self._close_longest_idle()
        elif in_flight == warm:
            self._idle.pop(host, None)
        if jobs:
            self._offer(host, jobs[0][0])
        else:
            del self._waiting[host]
        return host, job

    def _close_longest_idle(self) -> None:
        """Take away the connection the transport closes to open one past the budget."""
        if not self._idle:
            return
        host = next(iter(self._idle))  # the host whose idle connection waited longest
        if host in self._drained:
            left = self._drained[host] - 1
            if left:
                self._drained[host] = left
            else:
                del self._drained[host]
                del self._idle[host]
        else:
            left = self._warm[host] - 1
            self._warm[host] = left
            if left <= self._in_flight.get(host, 0):
                del self._idle[host]
        self._warm_total -= 1

    def _host_to_start(self, oldest: Hashable, now: float) -> Hashable | None:
        """Whose job starts, given the host of the oldest startable job; None after
        holding that host back to wait for one of its own connections."""
        in_flight = self._in_flight.get(oldest, 0)
        if (self.connections is None or self._warm_total < self.connections
                or in_flight < self._warm.get(oldest, 0)):
            return oldest  # it has an idle connection, or there is room for a new one
        warm = self._first(self._warm_ready, idle_warm=True)
        # A host with an idle connection goes first, unless the oldest job has seen
        # more than a round of newer jobs start ahead of it.
        if warm is not None and (self._waiting[warm][0][0] - self._waiting[oldest][0][0]
                                 <= self.connections):
            return warm
        # A host whose own connections can take the rest of its jobs within a round
        # waits for them (the tail of a run); one with more work needs more anyway.
        if (self.reuse_wait and 0 < len(self._waiting[oldest]) <= in_flight
                and oldest not in self._waited):
            self._held_until[oldest] = now + self.reuse_wait
            return None
        return oldest

    def _open_gradually(self, host: Hashable, in_flight: int, now: float) -> None:
        """Hold a host that has not answered yet at its opening window for now."""
        steps = int((now - self._opening[host]) / OPENING_STEP) if self.open_by_time else 0
        window = OPENING_WINDOW << min(steps, 16)
        if window >= self._caps.get(host, self.per_host) or in_flight < window:
            return
        until = (self._opening[host] + (steps + 1) * OPENING_STEP if self.open_by_time
                 else math.inf)  # until it answers: the pacer's slow start takes over
        self.cool_down(host, until, "opening", now)

    def answered(self, host: Hashable, now: float | None = None) -> None:
        """``host`` answered (anything): its opening window is open."""
        if self._opening.pop(host, None) is not None and \
                self._cool_reason.get(host) == "opening":
            # _end_waits puts it back in line, or keeps the spacing asked for meanwhile
            self._cool_until[host] = self._spaced_until.pop(host, 0.0)
            self._cool_reason[host] = "backoff"
            if self.clock is not None and now is not None:
                self.clock.release(host, now)

    def limit(self, host: Hashable, cap: int | None) -> None:
        """Start at most ``cap`` jobs of ``host`` at once (None: ``per_host`` again); above
        ``per_host`` too (a ``hosts`` rule's concurrency). Forgotten when it drains."""
        before = self._caps.get(host, self.per_host)
        if cap is None or cap == self.per_host:
            self._caps.pop(host, None)
            cap = self.per_host
        else:
            cap = self._caps[host] = max(1, cap)
        jobs = self._waiting.get(host)
        if jobs and cap > before and host not in self._cooling and host not in self._held_until:
            self._offer(host, jobs[0][0])

    def space(self, host: Hashable, until: float, reason: str = "backoff",
              now: float | None = None) -> None:
        """Start no other job of ``host`` before ``until`` (its pace between starts)."""
        if host in self._opening and self._cool_reason.get(host) == "opening":
            self._spaced_until[host] = until  # kept for when the host answers
        self.cool_down(host, until, reason, now)

    def cooling(self, host: Hashable, now: float) -> str:
        """Why ``host`` may not start a job now (one of
        :data:`batchfetch.scheduling.waits.REASONS`), or ""."""
        if host in self._cooling and self._cool_until[host] > now:
            return self._cool_reason[host]
        return ""

    def active(self, host: Hashable) -> bool:
        """Whether ``host`` has jobs waiting or in flight."""
        return host in self._waiting or host in self._in_flight

    def in_flight(self, host: Hashable) -> int:
        """Jobs of ``host`` started and not finished."""
        return self._in_flight.get(host, 0)

    def limit_connections(self, connections: int) -> None:
        """Change the budget the warm counts follow (the transport's, lowered during a
        run): idle connections over it go at once, longest idle first, and then one as
        each job finishes, until the warm counts fit, as the transport closes them.

        Example::

            >>> queues = HostQueues(per_host=4, connections=4)
            >>> for job in range(4): queues.add("a", job)
            >>> started = [queues.take(now=0.0) for _ in range(4)]
            >>> for _ in range(4): queues.finished("a")
            >>> queues.limit_connections(1)
            >>> queues.warm_total
            1
        """
        self.connections = connections
        while self._warm_total > connections and self._idle:
            self._close_longest_idle()

    @property
    def warm_total(self) -> int:
        """Connections the model counts open (warm), busy or idle, over every host."""
        return self._warm_total

    def finished(self, host: Hashable) -> None:
        """One job of ``host`` is no longer in flight."""
        was = self._in_flight.get(host, 0)
        if was > 1:
            self._in_flight[host] = was - 1
        else:
            self._in_flight.pop(host, None)
        self._waited.discard(host)
        self._idle[host] = None
        self._idle.move_to_end(host)
        jobs = self._waiting.get(host)
        if jobs and self._held_until.pop(host, None) is not None:
            if host not in self._cooling:
                self._offer(host, jobs[0][0])  # the connection it waited for is free
        elif jobs:
            # Offer the host again only where _first may have dropped it for this reason:
            # at its cap, or with no idle connection (its other entries are still there).
            if host not in self._cooling:
                if was >= self._caps.get(host, self.per_host):
                    heapq.heappush(self._ready, (jobs[0][0], host))
                if was == self._warm.get(host, 0):
                    heapq.heappush(self._warm_ready, (jobs[0][0], host))
        elif was <= 1:
            self._drained[host] = self._warm.pop(host)  # its connections stay open
            self._caps.pop(host, None)
            self._spaced_until.pop(host, None)
            if self.clock is not None:
                self.clock.forget(host)
            if self.connections is None:  # no budget: keep no count of drained hosts
                self._warm_total -= self._drained.pop(host)
                self._idle.pop(host, None)
        if self.connections is not None and self._warm_total > self.connections:
            self._close_longest_idle()  # over a lowered budget

    def cool_down(self, host: Hashable, until: float, reason: str = "retry-after",
                  now: float | None = None) -> None:
        """Start no job of ``host`` before ``until`` (a Retry-After from the server; or
        ``reason``: one of :data:`batchfetch.scheduling.waits.REASONS`), counted on the clock from
        ``now`` when given."""
        if until > self._cool_until.get(host, 0.0):
            self._cool_until[host] = until
            self._cool_reason[host] = reason
            self._cooling.add(host)
            if self.clock is not None and now is not None:
                self.clock.hold(host, now, until, reason)

    def _end_waits(self, now: float) -> bool:
        """Put hosts whose cool-down or hold is over back in line; True if one has jobs."""
        resumed = False
        for host in [host for host in self._cooling if self._cool_until[host] <= now]:
            self._cooling.discard(host)
            del self._cool_until[host]
            del self._cool_reason[host]
            jobs = self._waiting.get(host)
            if jobs and host not in self._held_until:
                self._offer(host, jobs[0][0])
                resumed = True
        for host in [host for host, until in self._held_until.items() if until <= now]:
            del self._held_until[host]
            self._waited.add(host)
            jobs = self._waiting.get(host)
            if jobs and host not in self._cooling:
                self._offer(host, jobs[0][0])
                resumed = True
        return resumed

    def next_wakeup(self, now: float) -> float | None:
        """When a cool-down or hold that keeps jobs waiting ends (``now`` if one just did)."""
        if not self._cooling and not self._held_until:
            return None  # the usual case, asked after every event
        if self._end_waits(now):
            return now
        # An opening held until its host answers ends with the answer, not at a time.
        ends = [self._cool_until[host] for host in self._cooling
                if host in self._waiting and self._cool_until[host] != math.inf]
        ends.extend(self._held_until.values())
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
        if not self.interval:
            return 0.0
        return max(0.0, round(self._next_start - now, 9))

    def started(self, now: float) -> None:
        """Record a start at ``now``."""
        if self.interval:
            self._next_start = max(now, self._next_start) + self.interval
