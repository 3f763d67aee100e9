"""The local engine: a batch run in this process, on gevent, over one transport.

:class:`LocalEngine` owns the transport (its session and pools) for every run it serves.
Each run is a :class:`_Batch`: the caller's greenlet runs its scheduler, which pulls
input lazily (at most ``max_pending`` items ahead of the rows it has yielded), starts
attempts under the concurrency, per-host and rate limits, times retries without
holding a slot, and yields a :class:`~batchfetch.engines.base.RowEvent` per input as
each completes. Attempt greenlets (at most ``concurrency``, started as needed and
reused, since spawning one per attempt cost a twentieth of a request's CPU) run the
attempts, and also book each outcome and take the next attempt themselves (see
:meth:`_Batch._run_attempts` for why); rows and hooks belong to the caller.
"""
from __future__ import annotations

import contextlib
import dataclasses
import heapq
import itertools
import logging
import os
import random
import time
import weakref
from collections import deque
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.lock
import gevent.pool
import gevent.queue

from ..scheduling.politeness import Politeness
from ..config import FetchOptions
from ..policies import Limits
from ..errors import BatchFetchError, ErrorKind, InvalidItemError
from ..saving import HELD_SUFFIX, drop_held
from ..scheduling.hosts import HostQueues, StartRate
from ..inputs import HostKeys, RequestSpec, error_row, request_hash, to_spec
from ..redaction import mask_passwords, mask_url
from ..results import FetchResult
from ..scheduling.pace import THROTTLED_STATUS
from ..scheduling.retry import decide
from ..transport import Outcome, Transport, transport_for
from ..scheduling.waits import ZERO_READING, WaitClock
from .base import RowEvent

__all__ = ["LocalEngine"]

log = logging.getLogger("batchfetch")

#: Items of hosts held back for politeness may pass max_pending by this factor, so a
#: rate-limited host does not starve the others (bench W10) and memory stays bounded.
LEND_FACTOR = 8


class LocalEngine:
    """Runs batches in this process: one transport (its session and pools) for all of them.

    Runs go one at a time; the transport keeps its connections from one run to the next
    until :meth:`close`.

    Example::

        >>> from batchfetch import FetchOptions
        >>> engine = LocalEngine(FetchOptions(concurrency=4))
        >>> [event.row.status for event in engine.run(iter([(0, "http://127.0.0.1:8000/ok")]))]
        [200]
        >>> engine.close()
    """

    def __init__(self, options: FetchOptions, start_rate: Any = None) -> None:
        """``start_rate``: what paces the run's starts instead of a StartRate of
        ``options.rate`` (a distributed run's SharedStartRate); the same two calls."""
        self.options = options
        self.start_rate = start_rate
        self.transport: Transport = transport_for(options)  # connects on first use
        self._running = False
        self._runs: weakref.WeakSet = weakref.WeakSet()  # to cancel on close()
        self._batch: _Batch | None = None

    def run(self, pairs: Iterator[tuple[int, Any]]) -> Iterator[RowEvent]:
        """One RowEvent per ``(index, item)`` pair, in completion order (see Engine)."""
        batch = self._batch = _Batch(self.options, self.transport, self.start_rate)
        events = batch.row_events(pairs, self)
        self._runs.add(events)
        return events

    def limit(self, limits: Limits) -> None:
        """From now on run within ``limits``' concurrency, per_host and rate (its
        max_pending is not taken), a run in progress included. The connections follow
        the concurrency: idle ones over it close now, busy ones as their responses end
        (see :meth:`within`).

        Example::

            >>> from batchfetch import FetchOptions, Limits
            >>> engine = LocalEngine(FetchOptions(concurrency=8))
            >>> engine.limit(Limits(concurrency=2, rate=5.0))
            >>> engine.options.concurrency, engine.within(2)
            (2, True)
        """
        self.options = options = self.options.replace(limits=dataclasses.replace(
            limits, max_pending=self.options.limits.max_pending))
        self.transport.connections.limit = options.concurrency
        self.transport.connections.trim()
        batch = self._batch
        if batch is not None:
            batch.concurrency = options.concurrency
            batch.queues.limit_connections(options.concurrency)
            batch.queues.per_host = options.host_limit
            if hasattr(batch, "polite"):  # built when the run's first row is asked for
                batch.polite.pacer.window_cap = options.host_limit
            batch.rate.interval = 1.0 / options.rate if options.rate else 0.0

    @property
    def in_flight(self) -> int:
        """Attempts in flight now (0 between runs)."""
        return self._batch.in_flight if self._batch is not None else 0

    def within(self, concurrency: int) -> bool:
        """Are no more than ``concurrency`` attempts in flight and connections open?"""
        in_flight = self._batch.in_flight if self._batch is not None else 0
        return in_flight <= concurrency and self.transport.connections.open <= concurrency

    def _start(self) -> None:
        """Count a run as started (when its first event is asked for): one at a time."""
        if self._running:
            raise BatchFetchError("this engine is running a batch already: one run at a "
                                  "time (use a second Fetcher for a second run at once)")
        self._running = True

    def _finished(self) -> None:
        self._running = False
        self._batch = None

    def close(self) -> None:
        """Cancel a run in progress and close the transport's connections; a later run
        opens new ones."""
        for events in list(self._runs):
            with contextlib.suppress(ValueError):  # closed from inside that run: it ends itself
                events.close()
        self.transport.close()


@dataclasses.dataclass(eq=False, slots=True)
class _Job:
    """One input item on its way to a row; per-attempt state lives here, not in options."""

    index: int
    item: Any
    spec: RequestSpec
    host: tuple[str, str, int]
    attempts: int = 0
    first_start: float | None = None
    started: float = 0.0  # the current attempt's start
    throttled: int = 0  # retries after a 429, which do not count against retries
    throttled_wait: float = 0.0
    queued: tuple[float, ...] = ZERO_READING  # the politeness clock when it was queued
    queued_at: float = 0.0
    waited: float = 0.0  # seconds held for politeness before the first attempt
    wait_reason: str = ""


class _Batch:
    """The state of one run: the scheduler's queues, timers and in-flight attempts."""

    def __init__(self, options: FetchOptions, transport: Transport,
                 start_rate: Any = None) -> None:
        self.options = options
        self.transport = transport
        # LocalEngine.limit may change it, the host limit and the rate during the run.
        self.concurrency = options.concurrency
        self.queues: HostQueues[_Job] = HostQueues(options.host_limit,
                                                  connections=options.concurrency,
                                                  clock=WaitClock(),
                                                  open_by_time=not options.adapts)
        self.rate = start_rate if start_rate is not None else StartRate(options.rate)
        if hasattr(self.rate, "on_slots"):  # a shared rate: wake when its slots arrive
            self.rate.on_slots = lambda: self.messages.put(("rate",))
        self.timers: list[tuple[float, int, _Job]] = []  # retries waiting: (when, seq, job)
        self.sequence = itertools.count()
        # Items, robots.txt policies and wake-ups, for the scheduler's greenlet.
        self.messages: gevent.queue.Queue = gevent.queue.Queue()
        self.ready_rows: deque[RowEvent] = deque()
        self.in_flight = 0
        self.attempt_inbox: gevent.queue.Queue = gevent.queue.Queue()  # jobs to send
        self.attempt_greenlets = gevent.pool.Group()
        self.idle_attempt_greenlets = 0  # waiting in _attempt_loop for the next attempt
        self.pending = 0  # items pulled whose row has not been yielded yet
        self.rng = random.Random()
        self.host_keys = HostKeys()
        self.polite: Politeness  # built when the rows are first asked for
        self.room: gevent.lock.Semaphore  # places in the look-ahead (max_pending)
        self.lent: set[int] = set()  # indexes of items of held hosts, outside the look-ahead
        self.lend_limit = LEND_FACTOR * options.pending_limit

    # -- the scheduler loop ------------------------------------------------

    def row_events(self, source: Iterator[tuple[int, Any]],
                   engine: LocalEngine) -> Iterator[RowEvent]:
        """Yield a RowEvent per ``(index, item)`` pair of ``source``, as each completes."""
        engine._start()  # here, not in a wrapping generator: one layer less per row
        feeder = None
        try:
            if self.options.save_dir:
                os.makedirs(self.options.save_dir, exist_ok=True)
            self.polite = Politeness(self.options, self.queues,
                                     fetch_robots=self.transport.fetch_robots,
                                     spawn=self.attempt_greenlets.spawn, post=self.messages.put,
                                     reject=lambda row, item, exception: self.ready_rows.append(
                                         RowEvent(row, exception, item)))
            room = self.room = gevent.lock.Semaphore(self.options.pending_limit)
            # The input is pulled in its own greenlet, so an input that waits for its next
            # item (a pipe, a queue) holds up neither new attempts nor finished rows.
            feeder = gevent.spawn(self._feed, source, room)
            exhausted = False
            while True:
                for message in self._messages():
                    if message[0] == "item":
                        self._accept(*message[1])
                        self._start_attempts()  # the first requests go out while items arrive
                    elif message[0] == "end":
                        exhausted = True
                    elif message[0] == "failed":
                        raise message[1]
                    elif message[0] == "robots":
                        self.polite.robots_known(*message[1:])
                        self._start_attempts()
                self._release_due_timers()
                self._start_attempts()
                while self.ready_rows:
                    event = self.ready_rows.popleft()
                    self.pending -= 1
                    if event.row.index in self.lent:  # its place was given back when queued
                        self.lent.discard(event.row.index)
                    else:
                        room.release()
                    yield event
                if exhausted and not self.pending:
                    return
        finally:
            engine._finished()
            if feeder is not None:
                feeder.kill(block=True, timeout=1.0)
            self.attempt_greenlets.kill(block=True, timeout=1.0)
            if hasattr(self, "polite"):
                self.polite.log_throttled_hosts()
                # It calls back into the run: breaking the cycle lets the run and its rows
                # go as soon as the caller drops them, not when the cycle collector runs.
                del self.polite

    def _feed(self, source: Iterator[Any], room: gevent.lock.Semaphore) -> None:
        """Pull items (in the feeder greenlet) while fewer than max_pending rows are owed."""
        try:
            while True:
                room.acquire()
                try:
                    item = next(source)
                except StopIteration:
                    break
                self.messages.put(("item", item))
        except gevent.GreenletExit:
            raise
        except BaseException as exc:  # noqa: BLE001 - the caller's input failed: raise it there
            self.messages.put(("failed", exc))
            return
        self.messages.put(("end",))

    def _accept(self, index: int, item: Any) -> None:
        self.pending += 1
        try:
            spec = to_spec(item, self.options)
        except InvalidItemError as exc:
            row = error_row(index, item, self.options.method, exc.kind,
                            mask_passwords(exc.message))
            self.ready_rows.append(RowEvent(row, exc, item))
            return
        host = self.host_keys(spec.url)
        self.polite.admit(_Job(index, item, spec, host))
        if self.polite.holds(host) and len(self.lent) < self.lend_limit:
            # A host held back (its pace lowered, a Retry-After, a rate, a Crawl-delay)
            # would fill the look-ahead with its items and starve the other hosts: its
            # item gives its place back, up to lend_limit such items.
            self.lent.add(index)
            self.room.release()

    def _release_due_timers(self) -> None:
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, job = heapq.heappop(self.timers)
            self.queues.add(job.host, job)

    def _take_attempt(self) -> _Job | None:
        """The next attempt the limits allow now, counted as started; None if none."""
        if self.in_flight >= self.concurrency or not len(self.queues):
            return None  # (asked with nothing queued, a shared rate would take slots)
        now = time.monotonic()
        wait = self.rate.wait_time(now)
        if wait > 0:
            self.polite.rate_wait(now, wait)
            return None
        taken = self.queues.take(now)
        if taken is None:
            return None
        host, job = taken
        self.rate.started(now)
        self.polite.started(host, job, now)
        job.started = now
        if job.first_start is None:
            job.first_start = now
        job.attempts += 1
        self.in_flight += 1
        return job

    def _start_attempts(self) -> None:
        while (job := self._take_attempt()) is not None:
            if self.idle_attempt_greenlets:
                self.idle_attempt_greenlets -= 1  # one waiting in _attempt_loop takes it
            else:
                self.attempt_greenlets.spawn(self._attempt_loop)
            self.attempt_inbox.put(job)

    def _attempt_loop(self) -> None:
        """An attempt greenlet: run attempts from the inbox until killed."""
        inbox = self.attempt_inbox
        while True:
            self._run_attempts(inbox.get())
            self.idle_attempt_greenlets += 1

    def _run_attempts(self, job: _Job | None) -> None:
        """Run ``job``'s attempt, book its outcome, and go on with the next that may start.

        Booking and taking the next attempt here, in the attempt greenlet, keeps a slot busy
        without a round trip through the scheduler's greenlet (which under load waits
        behind every other greenlet the hub has ready); the scheduler is woken to yield
        the rows and to feed idle attempt greenlets.
        """
        try:
            while job is not None:
                self._complete(job, self._attempt(job))
                self.messages.put(("wake",))
                job = self._take_attempt()
        except Exception as exc:  # noqa: BLE001 - a bug: stop the run and raise it to the caller
            self.messages.put(("failed", exc))
            raise gevent.GreenletExit from exc

    def _attempt(self, job: _Job) -> Outcome:
        try:
            return self.transport.attempt(job.spec, job.host, job.index)
        except Exception as exc:  # noqa: BLE001 - a bug must not leave the scheduler waiting
            log.exception("batchfetch failed internally fetching %s", mask_url(job.spec.url))
            return Outcome(error=ErrorKind.PROTOCOL, message=f"internal error: {exc!r}",
                           exception=exc)

    def _messages(self) -> list[tuple]:
        """Wait until an item arrives, an attempt completes, or a timer, rate slot, or the
        end of a host's cool-down or wait for its connections is due; return every event
        that is ready (none when a wakeup is due)."""
        if self.ready_rows or self.messages.qsize():
            return self._drain([])
        now = time.monotonic()
        wakeups = [self.timers[0][0]] if self.timers else []
        host_wait_end = self.queues.next_wakeup(now)
        if host_wait_end is not None:
            wakeups.append(host_wait_end)
        if len(self.queues) and self.in_flight < self.concurrency:
            wait = self.rate.wait_time(now)
            if wait:
                wakeups.append(now + wait)
        timeout = max(0.0, min(wakeups) - now) if wakeups else None
        try:
            return self._drain([self.messages.get(timeout=timeout)])
        except gevent.queue.Empty:
            return []

    def _drain(self, messages: list[tuple]) -> list[tuple]:
        while not self.messages.empty():
            messages.append(self.messages.get_nowait())
        return messages

    def _complete(self, job: _Job, outcome: Outcome) -> None:
        self.in_flight -= 1
        pace = self.polite.answered(job.host, job.started, outcome.status, outcome.error)
        self.queues.finished(job.host)
        decision = decide(self.options, job.spec.method, outcome, job.attempts, outcome.reused,
                          time.time(), self.rng, job.throttled, job.throttled_wait,
                          pace.retries)
        if decision.retry:
            if self.options.since is not None and outcome.path.endswith(HELD_SUFFIX):
                drop_held(outcome.path)  # held for the run loop: not the answer it gets
            when = time.monotonic() + decision.wait
            if decision.throttled:
                job.throttled += 1
                job.throttled_wait += decision.wait
            if decision.cool_down:
                self.queues.cool_down(job.host, when, "retry-after", when - decision.wait)
                pace.pause(when - decision.wait, when)
                log.info("cooling down %s://%s:%d for %.2f s (Retry-After)", *job.host,
                         decision.wait)
            log.info("retrying %s in %.2f s (attempt %d: %s)", mask_url(job.spec.url),
                     decision.wait, job.attempts, outcome.error or outcome.status)
            heapq.heappush(self.timers, (when, next(self.sequence), job))
            return
        # An http row has no exception: the run loop makes its HTTPStatusError if a
        # handler asks (exception_for), the one place that builds it.
        self.ready_rows.append(RowEvent(self._row(job, outcome, decision.message),
                                        outcome.exception, job.item))

    def _row(self, job: _Job, outcome: Outcome, refusal: str) -> FetchResult:
        error, message = outcome.error, outcome.message
        ok = not error and outcome.status in self.options.ok_status
        if not error and not ok:
            error = ErrorKind.HTTP
            message = f"{outcome.status} {outcome.reason}".strip()
            if refusal:
                message = f"{message}; {refusal}"
        # What a row shows never holds a URL's password (the request used it).
        return FetchResult(
            index=job.index, id=job.spec.id, url=mask_url(job.spec.url),
            method=job.spec.method, ok=ok, status=outcome.status, reason=outcome.reason,
            elapsed=time.monotonic() - (job.first_start or time.monotonic()),
            size=outcome.size, attempts=job.attempts,
            final_url=mask_url(outcome.final_url), content_type=outcome.content_type,
            error=error, message=mask_passwords(message), path=outcome.path,
            waited=job.waited, wait_reason=job.wait_reason, throttled=job.throttled
            + (outcome.status == THROTTLED_STATUS), sha256=outcome.sha256,
            etag=outcome.etag, last_modified=outcome.last_modified,
            request_hash=request_hash(job.spec), body=outcome.body, headers=outcome.headers)
