"""The process engine: a batch shared between ``workers`` processes (``workers > 1``):
this one and ``workers - 1`` worker processes.

Each worker process is ``python -m batchfetch.engines._process_child``, running a
:class:`~batchfetch.engines.local.LocalEngine` with its own gevent hub, pool and
session. This process runs one more LocalEngine as its own share, with the whole of
the limits at first, so the batch does not wait the fifth of a second a new interpreter
takes to import gevent, requests and urllib3.

Worker processes are started one at a time, each once this process is busy (:data:`BUSY`
of a CPU over :data:`BUSY_WINDOW`): a batch that waits on the network gains nothing from
more processes and would lose to their split (each share warms its own connections, and
the last items of two shares end later than those of one), so it stays in this process.
When a worker has started, this process's share first gives up the worker's part of the
limits (its attempts and connections over its new limit end before the worker starts
any, so the shares' attempts and connections stay within the whole, unless the
concurrency is below the number of processes: each runs at least one), then hands the
worker the items it has not started; when a worker exits, its part comes back. An item
that cannot be pickled stays in this process. The parent reads the input lazily, hands
each item to a share (see :class:`~batchfetch.engines._shares.Shares`), and yields rows
as the shares report them: a worker that dies has its unfinished items handed to the
others, and closing the iterator stops every worker.
Each worker process runs with the limits divided by :meth:`Limits.divided
<batchfetch.policies.Limits.divided>`; this process keeps the rest (at least one). Each
share fetches its own hosts' robots.txt, up to its own concurrency at once.
"""
from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.lock
import gevent.queue

from ._shares import OwnShare, Shares, WorkerProcess, read_rows
from ..config import FetchOptions
from ..policies import Limits
from .base import RowEvent

__all__ = ["ProcessEngine"]


#: The share of one CPU this process's hub wants (runs, or waits to run while other work
#: holds the CPU) over :data:`BUSY_WINDOW` seconds, from which it starts another worker
#: process (a batch that waits on the network stays well below: W2 uses about a third).
BUSY = 0.9
BUSY_WINDOW = 0.15


def _worker_options(options: FetchOptions) -> FetchOptions:
    """The options each worker process runs with: the limits divided."""
    return options.replace(workers=1, limits=options.limits.divided(options.workers))


def _kept(whole: Limits, part: Limits, others: int) -> Limits:
    """The limits this process keeps when ``others`` worker processes run ``part`` each:
    the rest of the whole, at least one (or a worker's part, for rate)."""
    def rest(total, each, least):
        return None if total is None else max(least, total - others * each)

    return dataclasses.replace(
        whole, concurrency=rest(whole.concurrency, part.concurrency, 1),
        per_host=rest(whole.per_host, part.per_host, 1),
        rate=rest(whole.rate, part.rate, part.rate))


class ProcessEngine:
    """Runs each batch on this process and ``options.workers - 1`` new worker processes,
    the limits divided.

    Example::

        >>> from batchfetch import FetchOptions
        >>> engine = ProcessEngine(FetchOptions(workers=2))
        >>> [event.row.status for event in engine.run(iter([(0, "http://127.0.0.1:8000/ok")]))]
        [200]
        >>> engine.close()
    """

    def __init__(self, options: FetchOptions) -> None:
        self.options = options
        self._shares: Shares | None = None  # the running batch's

    def run(self, pairs: Iterator[tuple[int, Any]]) -> Iterator[RowEvent]:
        """One RowEvent per ``(index, item)`` pair, in completion order (see Engine)."""
        return _sharded_events(pairs, self.options, self)

    @property
    def in_flight(self) -> int:
        """Requests in flight: this process's now, each worker process's as it said with
        its latest row (0 between runs)."""
        return self._shares.in_flight() if self._shares is not None else 0

    def close(self) -> None:
        """Nothing to release: each run starts and stops its own worker processes."""


def _sharded_events(pairs: Iterator[tuple[int, Any]], options: FetchOptions,
                    engine: ProcessEngine) -> Iterator[RowEvent]:
    worker_options = _worker_options(options)
    events: gevent.queue.Queue = gevent.queue.Queue()
    # The whole of the limits until a worker process takes a share, but a worker's part
    # of the look-ahead (enough for the whole concurrency): items handed to this share
    # beyond it wait where they can be handed on to a worker. First in the list, so that
    # it takes the first items.
    own = OwnShare(options.replace(workers=1, limits=dataclasses.replace(
        options.limits, max_pending=max(worker_options.limits.max_pending,
                                        options.concurrency))), events)
    shares = engine._shares = Shares(own, slack=max(1, worker_options.concurrency // 4))
    started: gevent.queue.Queue = gevent.queue.Queue()  # a new worker process's first word
    room = gevent.lock.Semaphore(options.pending_limit)
    greenlets: list[gevent.Greenlet] = []
    try:
        greenlets.append(gevent.spawn(_feed, pairs, shares, room, events))
        greenlets.append(gevent.spawn(_grow, shares, options.limits, worker_options,
                                      options.workers - 1, started, events, greenlets))
        fed_all, owed = False, 0
        while not fed_all or owed:
            event = events.get()
            kind = event[0]
            if kind == "fed":
                owed += 1
            elif kind == "input done":
                fed_all = True
            elif kind == "failed":
                raise event[1]
            elif kind == "row":
                _, worker, serial, row, exception = event
                _, item = worker.outstanding.pop(serial)
                owed -= 1
                room.release()
                yield RowEvent(row, exception, item)
            else:  # "exited": hand what the worker left unanswered to the others
                worker = event[1]
                if worker.admitted:  # its part of the limits comes back here
                    worker.admitted = False
                    own.engine.limit(_kept(options.limits, worker_options.limits,
                                           shares.working()))
                left, worker.outstanding = worker.outstanding, {}
                for serial, (index, item) in sorted(left.items()):
                    shares.hand(serial, index, item)
    finally:
        engine._shares = None
        gevent.killall(greenlets, block=True, timeout=1.0)
        for worker in shares.all:
            worker.stop()


def _grow(shares: Shares, whole: Limits, worker_options: FetchOptions, count: int,
          started: gevent.queue.Queue, events: gevent.queue.Queue,
          greenlets: list[gevent.Greenlet]) -> None:
    """Start up to ``count`` worker processes, one at a time while this process is busy,
    and give each its share once it has started: this process's share first gives up as
    much, then hands over the items it has not started."""
    own, part = shares.all[0], worker_options.limits
    try:
        for _ in range(count):
            _wait_until_busy()
            worker = WorkerProcess()
            shares.all.append(worker)
            greenlets.append(gevent.spawn(read_rows, worker, events, started))
            while started.get() is not worker:  # its first word, or its exit
                pass
            if not worker.alive:
                continue
            kept = _kept(whole, part, shares.working() + 1)
            own.engine.limit(kept)
            # Its attempts over the new limit end within one response each: only then
            # may the worker start its own, so the shares never hold more than the whole.
            while not own.engine.within(kept.concurrency):
                gevent.sleep(0.005)
            if not (worker.alive and worker.send(worker_options)):
                own.engine.limit(_kept(whole, part, shares.working()))
                continue
            worker.admitted = True
            shares.replace_all()  # every origin may go to the new share
            for serial, index, item in own.take_back():
                shares.hand(serial, index, item)
    except gevent.GreenletExit:
        raise
    except Exception as exc:  # noqa: BLE001 - a worker that cannot start: the caller's to see
        events.put(("failed", exc))


def _wait_until_busy() -> None:
    """Return once this thread (its gevent hub) has wanted :data:`BUSY` of a CPU over the
    last :data:`BUSY_WINDOW` seconds: running, or ready to run while the machine's other
    work held the CPU (Linux's schedstat; elsewhere, the CPU it used)."""
    while True:
        wall, wanted = time.monotonic(), _cpu_wanted()
        gevent.sleep(BUSY_WINDOW)
        if _cpu_wanted() - wanted >= BUSY * (time.monotonic() - wall):
            return


def _cpu_wanted() -> float:
    """Seconds this thread has run or waited to run (schedstat's first two fields)."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as stat:
            ran, waited = stat.read().split()[:2]
        return (int(ran) + int(waited)) / 1e9
    except (OSError, ValueError):
        return time.thread_time()


def _feed(pairs: Iterator[tuple[int, Any]], shares: Shares,
          room: gevent.lock.Semaphore, events: gevent.queue.Queue) -> None:
    """Pull the input lazily, within max_pending, and hand each item out.

    Workers learn that the input ended only when the run stops them (their stdin
    closes), so a worker that dies late can still have its items handed on.
    """
    try:
        for serial in itertools.count():
            room.acquire()  # before pulling: at most max_pending items out at once
            try:
                index, item = next(pairs)
            except StopIteration:
                break
            shares.hand(serial, index, item)
            events.put(("fed",))
    except gevent.GreenletExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the caller's input failed: raise it there
        events.put(("failed", exc))
        return
    events.put(("input done",))
