"""A run's politeness toward each host: its pace (the pacer), its ``hosts`` rule, its
robots.txt, and the clock of how long jobs waited for them.

The dispatcher asks it three things: what becomes of a new job (queued, held for its
origin's robots.txt, or a ``robots`` row), what a start changes (the host's spacing, the
job's wait), and what an answer changes (the host's pace and cap).
"""
from __future__ import annotations

import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Hashable

import gevent
import gevent.lock

from ..config import FetchOptions
from ..errors import ErrorKind, RobotsDisallowedError
from ..inputs import request_hash
from .hosts import HostQueues
from .pace import HostPace, Pacer, describe_pace
from ..redaction import mask_passwords, mask_url
from ..results import FetchResult
from .retry import backoff_delay
from ..robots import RobotsPolicy, sent_user_agent
from .waits import ZERO_READING, WaitClock

__all__ = ["Politeness"]

log = logging.getLogger("batchfetch")

#: The politeness clock's key for holds of the whole run (the run's ``rate``).
RUN = None
#: robots.txt policies kept, at most (an origin seen again after it was dropped has its
#: robots.txt fetched again); each may hold up to 500 KiB of rules.
MAX_ROBOTS = 4096

Reject = Callable[[FetchResult, Any, BaseException], None]


class Politeness:
    """Per-host politeness for one run, over the run's ``queues`` (and their clock).

    ``spawn(function, *args)`` runs a robots.txt fetch in a greenlet, ``post(event)``
    hands its policy to the scheduler (``("robots", origin, policy)``), ``reject``
    takes a ``robots`` row; ``fetch(spec, host)`` fetches an origin's policy.
    """

    def __init__(self, options: FetchOptions, queues: HostQueues, *,
                 fetch_robots: Callable[[Any, Hashable], RobotsPolicy],
                 spawn: Callable[..., Any], post: Callable[[tuple], None],
                 reject: Reject) -> None:
        self.options = options
        self.queues = queues
        self.clock: WaitClock = queues.clock
        least_rate = 1.0 / options.max_retry_wait if options.max_retry_wait else None
        self.pacer = Pacer(options.host_limit, adaptive=options.adapts, least_rate=least_rate,
                           active=queues.active, keep=max(10_000, 2 * options.pending_limit))
        self.robots: OrderedDict[Hashable, RobotsPolicy] = OrderedDict()  # by origin
        self.robots_waiting: dict[Hashable, list] = {}
        self._robots_fetches = gevent.lock.Semaphore(options.concurrency)
        self._rng = random.Random()
        self._fetch_robots, self._spawn, self._post, self._reject = (
            fetch_robots, spawn, post, reject)

    # -- new jobs ------------------------------------------------------------

    def admit(self, job: Any) -> None:
        """Queue a new ``job`` (``index``, ``item``, ``spec``, ``host``), hold it until its
        origin's robots.txt is known, or reject it with a ``robots`` row."""
        self._configure(job.host)
        if not self.options.follows_robots:
            self._queue(job)
            return
        origin = job.host
        policy = self.robots.get(origin)
        if policy is None:
            waiting = self.robots_waiting.get(origin)
            if waiting is None:
                waiting = self.robots_waiting[origin] = []
                self._spawn(self._robots_fetch, origin, job.spec)
            waiting.append(job)
            return
        self.robots.move_to_end(origin)
        user_agent = sent_user_agent(job.spec.headers, self.options.user_agent)
        if user_agent != policy.user_agent:
            policy = policy.for_user_agent(user_agent)
        message = self._refusal(policy, job.spec.url)
        if not message:
            self._queue(job)
            return
        row = FetchResult(index=job.index, id=job.spec.id, url=mask_url(job.spec.url),
                          method=job.spec.method, request_hash=request_hash(job.spec),
                          error=ErrorKind.ROBOTS,
                          message=mask_passwords(message))
        self._reject(row, job.item, RobotsDisallowedError(row.url, policy.url, row.message))

    def _refusal(self, policy: RobotsPolicy, url: str) -> str:
        if not policy.allows(url):
            return policy.message
        delay = policy.delay or 0.0
        if delay > self.options.max_retry_wait:
            return (f"{policy.url} asks for {delay:g} s between requests, more than "
                    f"max_retry_wait={self.options.max_retry_wait:g} s")
        return ""

    def _robots_fetch(self, origin: Hashable, spec: Any) -> None:
        """In a greenlet: fetch an origin's robots.txt, at most ``concurrency`` at once,
        and again after a reset or a timeout, as a request would be (``retries``)."""
        try:
            for attempt in range(1, self.options.retries + 2):
                with self._robots_fetches:
                    policy = self._fetch_robots(spec, origin)
                if not policy.transient or attempt > self.options.retries:
                    break
                gevent.sleep(backoff_delay(self.options, attempt, self._rng))
        except Exception as exc:  # noqa: BLE001 - a bug: stop the run and raise it to the caller
            self._post(("failed", exc))
            return
        self._post(("robots", origin, policy))

    def robots_known(self, origin: Hashable, policy: RobotsPolicy) -> None:
        """An origin's robots.txt arrived: admit the jobs that waited for it."""
        self.robots[origin] = policy
        if len(self.robots) > MAX_ROBOTS:
            self.robots.popitem(last=False)
        self._apply_robots(self.pacer.pace(origin), policy)
        for job in self.robots_waiting.pop(origin, ()):
            self.admit(job)

    @staticmethod
    def _apply_robots(pace: HostPace, policy: RobotsPolicy) -> None:
        if policy.delay and policy.delay > pace.least_interval:
            pace.least_interval, pace.least_reason = policy.delay, "crawl-delay"

    def _configure(self, host: Hashable) -> None:
        """A host seen first (or again, after the pacer forgot it): its ``hosts`` rule's
        concurrency, rate and retries, and its Crawl-delay."""
        pace = self.pacer.pace(host)
        if pace.configured:
            return
        pace.configured = True
        rule = self.options.hosts.for_key(host) if self.options.hosts is not None else None
        if rule is not None:
            if rule.concurrency is not None:
                pace.cap = min(rule.concurrency, self.options.concurrency)
                self.queues.limit(host, pace.cap)
            if rule.rate is not None:
                pace.least_interval = 1.0 / rule.rate
            pace.retries = rule.retries
        policy = self.robots.get(host)
        if policy is not None:
            self._apply_robots(pace, policy)

    def _queue(self, job: Any) -> None:
        now = time.monotonic()
        job.queued, job.queued_at = self._reading(job.host, now), now
        self.queues.add(job.host, job)

    def _reading(self, host: Hashable, now: float) -> tuple[float, ...]:
        reading = self.clock.reading(host, now)
        if not self.options.rate:
            return reading
        run_reading = self.clock.reading(RUN, now)
        if run_reading is ZERO_READING:
            return reading
        return tuple(map(sum, zip(reading, run_reading)))

    def holds(self, host: Hashable) -> bool:
        """Whether ``host`` is held back for politeness now: its own pace, a rate or
        Crawl-delay of its own, or a Retry-After."""
        pace = self.pacer.pace(host)
        return (pace.paced or pace.least_interval > 0
                or self.queues.cooling(host, time.monotonic()) == "retry-after")

    # -- starts and answers --------------------------------------------------

    def rate_wait(self, now: float, wait: float) -> None:
        """The run's ``rate`` holds every host for ``wait`` seconds from ``now``."""
        if len(self.queues):
            self.clock.hold(RUN, now, now + wait, "rate")

    def started(self, host: Hashable, job: Any, now: float) -> None:
        """A job of ``host`` starts now: space the host's next start; a first attempt
        learns how long the job was held for politeness."""
        interval, reason = self.pacer.pace(host).interval()
        if interval:
            self.queues.space(host, now + interval, reason, now)
        if job.first_start is None:
            waited, job.wait_reason = WaitClock.waited(job.queued, self._reading(host, now))
            job.waited = min(waited, now - job.queued_at)  # holds can overlap the run's

    def answered(self, host: Hashable, started: float, status: int | None,
                 error: str) -> HostPace:
        """Book an attempt's answer with the host's pace and apply what changed; call
        before the queues hear that the attempt finished."""
        now = time.monotonic()
        queues = self.queues
        queues.answered(host, now)
        pace = self.pacer.pace(host)
        if self.pacer.answered(host, started, now, status, error, queues.in_flight(host)):
            log.info("slowing down for %s://%s:%d: %s; now %s", *host,
                     error if status is None else status, describe_pace(pace))
        if pace.decreases or self.pacer.adaptive:
            queues.limit(host, pace.in_flight_cap)
        return pace

    def log_throttled_hosts(self) -> None:
        """At the end of a run (-v): how far each host that pushed back was slowed."""
        for host, pace in self.pacer.throttled_hosts().items():
            signals = ", ".join(f"{signal} x {count}"
                                for signal, count in pace.signals.most_common())
            lowest = describe_pace(HostPace(window=pace.lowest_window, rate=pace.lowest_rate))
            log.info("%s://%s:%d pushed back: %s; pace lowered %d times, at the least to %s",
                     *host, signals, pace.decreases, lowest)
