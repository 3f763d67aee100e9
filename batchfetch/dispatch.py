"""The dispatcher: a pool of greenlets sending grequests requests over one session.

The caller's greenlet runs the scheduler: it pulls input lazily (at most
``max_pending`` items ahead of what it has yielded), starts attempts under the
concurrency, per-host and rate limits, times retries without holding a slot,
and yields one :class:`FetchResult` per input as each completes. Worker
greenlets (at most ``concurrency``, started as needed and reused, since spawning
one per attempt cost a twentieth of a request's CPU) only run single attempts;
rows and hooks belong to the caller.
"""
from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import gevent
import gevent.lock
import gevent.pool
import gevent.queue

from ._politeness import Politeness
from .attempt import Outcome, run_attempt
from .config import FetchOptions
from .errors import HTTPStatusError, InvalidItemError
from .hosts import HostQueues, StartRate
from .inputs import HostKeys, RequestSpec, describe_item, item_id, item_method, to_spec
from .redaction import mask_line, mask_passwords, mask_url
from .results import FetchResult, ResultTable
from .retry import THROTTLED_STATUS, decide
from .robots import fetch_policy
from .session import RequestSettings, build_session
from .waits import ZERO_READING, WaitClock

__all__ = ["iter_fetch", "fetch_all"]

log = logging.getLogger("batchfetch")

#: Items of hosts held back for politeness may pass max_pending by this factor, so a
#: rate-limited host does not starve the others (bench W10) and memory stays bounded.
LEND_FACTOR = 8

OnResult = Callable[[FetchResult], Any]
ExceptionHandler = Callable[[Any, BaseException], Any]


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


def _build_options(options: FetchOptions | None, overrides: dict[str, Any]) -> FetchOptions:
    if options is None:
        return FetchOptions(**overrides)
    if not isinstance(options, FetchOptions):
        raise TypeError(f"options must be a FetchOptions, got {type(options).__name__}")
    return options.replace(**overrides) if overrides else options


def _check_items(items: Any, called: str) -> None:
    """Refuse one URL or one spec where a batch of them belongs: a str is iterable, and
    fetched character by character it gave one failed row per character."""
    if isinstance(items, (str, bytes, bytearray)):
        raise TypeError(f"items must be an iterable of URLs or request specs, not a single "
                        f"{type(items).__name__}: pass a list, e.g. {called}([url])")
    if isinstance(items, (Mapping, RequestSpec)):
        raise TypeError(f"items must be an iterable of URLs or request specs, not a single "
                        f"{type(items).__name__}: pass a list, e.g. {called}([spec])")
    if not isinstance(items, Iterable):
        raise TypeError(f"items must be an iterable of URLs or request specs, got "
                        f"{type(items).__name__}")


def iter_fetch(items: Iterable[Any], options: FetchOptions | None = None, *,
               on_result: OnResult | None = None,
               exception_handler: ExceptionHandler | None = None,
               indexed: bool = False,
               **option_values: Any) -> Iterator[FetchResult]:
    """Fetch ``items`` and yield one row per item as each completes (completion order).

    ``items`` is any iterable of URL strings, request-spec dicts or
    :class:`RequestSpec` (a single str, bytes, dict or RequestSpec raises TypeError);
    it is pulled lazily, at most ``max_pending`` items ahead of the rows yielded.
    Options come as a :class:`FetchOptions`, as keywords (``concurrency=50``), or
    both (keywords win); they are validated here, before the first ``next()``.
    Closing the iterator (a ``break``) cancels in-flight requests and closes the
    session.

    ``on_result(row)`` runs for every row and ``exception_handler(item, exc)``
    once per failed row, in the caller's greenlet, before the row is yielded;
    an exception raised by either stops the run and propagates.

    With ``indexed=True`` the items are ``(index, item)`` pairs and each row carries
    the given index instead of the item's position: for resuming a numbered input
    where some items are skipped (saved bodies keep their names too).

    Example::

        >>> for row in iter_fetch(["http://127.0.0.1:8000/ok"], concurrency=4):
        ...     print(row.index, row.status)
        0 200
    """
    _check_items(items, "iter_fetch")
    resolved = _build_options(options, option_values)
    run = _Run(resolved, on_result, exception_handler)
    pairs = iter(items) if indexed else enumerate(items)
    if resolved.workers > 1:
        from .workers import sharded_rows

        return sharded_rows(pairs, resolved, run._run_hooks)
    return run.rows(pairs)


def fetch_all(items: Iterable[Any], options: FetchOptions | None = None, *,
              on_result: OnResult | None = None,
              exception_handler: ExceptionHandler | None = None,
              indexed: bool = False,
              **option_values: Any) -> ResultTable:
    """Fetch every item and return a :class:`ResultTable` in input order.

    Takes the same arguments as :func:`iter_fetch`. Failures are rows with an
    ``error`` kind, not exceptions; call ``table.raise_for_errors()`` to raise.

    Example::

        >>> table = fetch_all(["http://127.0.0.1:8000/ok", "not a url"], timeout=10)
        >>> table
        <ResultTable 1 ok, 1 failed>
        >>> table[1].error
        'invalid_url'
    """
    _check_items(items, "fetch_all")
    started = time.monotonic()
    rows = list(iter_fetch(items, options, on_result=on_result,
                           exception_handler=exception_handler, indexed=indexed,
                           **option_values))
    return ResultTable(rows, wall_time=time.monotonic() - started)


class _Run:
    """The state of one run: the scheduler's queues, timers and in-flight attempts."""

    def __init__(self, options: FetchOptions, on_result: OnResult | None,
                 exception_handler: ExceptionHandler | None) -> None:
        self.options = options
        self.on_result = on_result
        self.exception_handler = exception_handler
        self.queues: HostQueues[_Job] = HostQueues(options.host_limit,
                                                  connections=options.concurrency,
                                                  clock=WaitClock(),
                                                  open_by_time=not options.adapts)
        self.rate = StartRate(options.rate)
        self.timers: list[tuple[float, int, _Job]] = []  # retries waiting: (when, seq, job)
        self.sequence = itertools.count()
        self.events: gevent.queue.Queue = gevent.queue.Queue()  # items; wake-ups from workers
        self.ready_rows: deque[tuple[FetchResult, Any, BaseException | None]] = deque()
        self.in_flight = 0
        self.attempt_inbox: gevent.queue.Queue = gevent.queue.Queue()  # (job, kwargs) to send
        self.workers = gevent.pool.Group()  # the greenlets running attempts
        self.idle_workers = 0  # workers that will take an attempt without being spawned
        self.session: Any = None  # built when the rows are first asked for
        self.settings: RequestSettings | None = None
        self.pending = 0  # items pulled whose row has not been yielded yet
        self.rng = random.Random()
        self.host_keys = HostKeys()
        self.polite: Politeness  # built with the session, when the rows are first asked for
        self.room: gevent.lock.Semaphore  # places in the look-ahead (max_pending)
        self.lent: set[int] = set()  # indexes of items of held hosts, outside the look-ahead
        self.lend_limit = LEND_FACTOR * options.pending_limit

    # -- the scheduler loop ------------------------------------------------

    def rows(self, source: Iterator[tuple[int, Any]]) -> Iterator[FetchResult]:
        """Yield a row per ``(index, item)`` pair of ``source``, as each completes."""
        if self.options.save_dir:
            os.makedirs(self.options.save_dir, exist_ok=True)
        self.session = build_session(self.options)
        self.settings = RequestSettings(self.options, self.session.environment)
        self.polite = Politeness(self.options, self.queues, fetch_robots=self._fetch_robots,
                                 spawn=self.workers.spawn, post=self.events.put,
                                 reject=lambda *row: self.ready_rows.append(row))
        room = self.room = gevent.lock.Semaphore(self.options.pending_limit)
        # The input is pulled in its own greenlet, so an input that waits for its next
        # item (a pipe, a queue) holds up neither new attempts nor finished rows.
        feeder = gevent.spawn(self._feed, source, room)
        exhausted = False
        try:
            while True:
                for event in self._events():
                    if event[0] == "item":
                        self._accept(*event[1])
                        self._start_attempts()  # the first requests go out while items arrive
                    elif event[0] == "end":
                        exhausted = True
                    elif event[0] == "failed":
                        raise event[1]
                    elif event[0] == "robots":
                        self.polite.robots_known(*event[1:])
                        self._start_attempts()
                self._release_due_timers()
                self._start_attempts()
                while self.ready_rows:
                    row, item, exception = self.ready_rows.popleft()
                    self.pending -= 1
                    if row.index in self.lent:
                        self.lent.discard(row.index)  # its place was given back when queued
                    else:
                        room.release()
                    self._run_hooks(row, item, exception)
                    yield row
                if exhausted and not self.pending:
                    return
        finally:
            feeder.kill(block=True, timeout=1.0)
            self.workers.kill(block=True, timeout=1.0)
            self.session.close()
            self.polite.log_throttled_hosts()
            # It calls back into the run: without this cycle the run, its session and their
            # idle connections go as soon as the caller drops the rows (urllib3 2's
            # PoolManager.clear() leaves closing them to the garbage collector).
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
                self.events.put(("item", item))
        except gevent.GreenletExit:
            raise
        except BaseException as exc:  # noqa: BLE001 - the caller's input failed: raise it there
            self.events.put(("failed", exc))
            return
        self.events.put(("end",))

    def _accept(self, index: int, item: Any) -> None:
        self.pending += 1
        try:
            spec = to_spec(item, self.options)
        except InvalidItemError as exc:
            row = FetchResult(index=index, url=mask_line(describe_item(item)),
                              id=item_id(item), method=item_method(item, self.options.method),
                              error=exc.kind, message=mask_passwords(exc.message))
            self.ready_rows.append((row, item, exc))
            return
        host = self.host_keys(spec.url)
        self.polite.admit(_Job(index, item, spec, host))
        if self.polite.holds(host) and len(self.lent) < self.lend_limit:
            # A host held back (its pace lowered, a Retry-After, a rate, a Crawl-delay)
            # would fill the look-ahead with its items and starve the other hosts: its
            # item gives its place back, up to lend_limit such items.
            self.lent.add(index)
            self.room.release()

    def _fetch_robots(self, spec: RequestSpec, host: tuple[str, str, int]) -> Any:
        """An origin's robots.txt policy, fetched with the run's session and settings."""
        return fetch_policy(self.session, spec.url, self.settings.kwargs(spec, host),
                            self.options.user_agent, deadline=self.options.deadline)

    def _release_due_timers(self) -> None:
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, job = heapq.heappop(self.timers)
            self.queues.add(job.host, job)

    def _take_attempt(self) -> tuple[_Job, dict[str, Any]] | None:
        """The next attempt the limits allow now, counted as started; None if none."""
        if self.in_flight >= self.options.concurrency:
            return None
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
        return job, self.settings.kwargs(job.spec, job.host)

    def _start_attempts(self) -> None:
        while (attempt := self._take_attempt()) is not None:
            if self.idle_workers:
                self.idle_workers -= 1  # one waiting in _work will take it
            else:
                self.workers.spawn(self._work)
            self.attempt_inbox.put(attempt)

    def _work(self) -> None:
        """A worker greenlet: run attempts from the inbox until killed."""
        inbox = self.attempt_inbox
        while True:
            self._run_attempts(inbox.get())
            self.idle_workers += 1

    def _run_attempts(self, attempt: tuple[_Job, dict[str, Any]] | None) -> None:
        """Run ``attempt``, book its outcome, and go on with the next attempt that may start.

        Booking and taking the next attempt here, in the worker, keeps a slot busy
        without a round trip through the scheduler's greenlet (which under load waits
        behind every other greenlet the hub has ready); the scheduler is woken to yield
        the rows and to feed idle workers.
        """
        try:
            while attempt is not None:
                job, kwargs = attempt
                outcome, reused = self._attempt(job, kwargs)
                self._complete(job, outcome, reused)
                self.events.put(("wake",))
                attempt = self._take_attempt()
        except Exception as exc:  # noqa: BLE001 - a bug: stop the run and raise it to the caller
            self.events.put(("failed", exc))
            raise gevent.GreenletExit from exc

    def _attempt(self, job: _Job, kwargs: dict[str, Any]) -> tuple[Outcome, bool]:
        """One attempt's outcome, and whether it went out on a reused connection."""
        gevent.getcurrent().batchfetch_reused_connection = False
        try:
            outcome = run_attempt(self.session, job.spec.method, job.spec.url, kwargs,
                                  self.options, job.index)
        except Exception as exc:  # noqa: BLE001 - a bug must not leave the scheduler waiting
            log.exception("batchfetch failed internally fetching %s", mask_url(job.spec.url))
            outcome = Outcome(error="protocol", message=f"internal error: {exc!r}",
                              exception=exc)
        return outcome, getattr(gevent.getcurrent(), "batchfetch_reused_connection", False)

    def _events(self) -> list[tuple]:
        """Wait until an item arrives, an attempt completes, or a timer, rate slot, or the
        end of a host's cool-down or wait for its connections is due; return every event
        that is ready (none when a wakeup is due)."""
        if self.ready_rows or self.events.qsize():
            return self._drain([])
        now = time.monotonic()
        wakeups = [self.timers[0][0]] if self.timers else []
        host_wait_end = self.queues.next_wakeup(now)
        if host_wait_end is not None:
            wakeups.append(host_wait_end)
        if len(self.queues) and self.in_flight < self.options.concurrency:
            wait = self.rate.wait_time(now)
            if wait:
                wakeups.append(now + wait)
        timeout = max(0.0, min(wakeups) - now) if wakeups else None
        try:
            return self._drain([self.events.get(timeout=timeout)])
        except gevent.queue.Empty:
            return []

    def _drain(self, events: list[tuple]) -> list[tuple]:
        while not self.events.empty():
            events.append(self.events.get_nowait())
        return events

    def _complete(self, job: _Job, outcome: Outcome, reused: bool) -> None:
        self.in_flight -= 1
        pace = self.polite.answered(job.host, job.started, outcome.status, outcome.error)
        self.queues.finished(job.host)
        decision = decide(self.options, job.spec.method, outcome, job.attempts, reused,
                          time.time(), self.rng, job.throttled, job.throttled_wait,
                          pace.retries)
        if decision.retry:
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
        row = self._row(job, outcome, decision.message)
        exception = outcome.exception
        if not row.ok and exception is None:
            exception = HTTPStatusError(row.url, row.status, row.message)
        self.ready_rows.append((row, job.item, exception))

    def _row(self, job: _Job, outcome: Outcome, refusal: str) -> FetchResult:
        error, message = outcome.error, outcome.message
        ok = not error and outcome.status in self.options.ok_status
        if not error and not ok:
            error = "http"
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
            + (outcome.status == THROTTLED_STATUS), body=outcome.body)

    def _run_hooks(self, row: FetchResult, item: Any, exception: BaseException | None) -> None:
        if self.on_result is not None:
            self.on_result(row)
        if self.exception_handler is not None and not row.ok and exception is not None:
            self.exception_handler(item, exception)

