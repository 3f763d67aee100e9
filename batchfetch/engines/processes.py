"""The process engine: a batch shared between ``workers`` processes (``workers > 1``):
this one and ``workers - 1`` worker processes.

Each worker process is ``python -m batchfetch.engines._process_child``, running a
:class:`~batchfetch.engines.local.LocalEngine` with its own gevent hub, pool and
session. This process runs one more LocalEngine as its own share, so the batch does not
wait the fifth of a second a new interpreter takes to import gevent, requests and
urllib3: until a worker says it has started, this process's share runs with the whole
concurrency; then it gives up the worker's part (its attempts and connections over its
new limit end first, so the whole stays within the concurrency), and the items it has
not started go to the worker. The parent reads the input lazily, hands each item to the
share with the least work outstanding, and yields rows as the shares report them: a
worker that dies has its unfinished items handed to the others, and closing the
iterator stops every worker. Concurrency, ``per_host``, ``rate`` and ``max_pending``
are divided between the shares by :meth:`Limits.divided
<batchfetch.policies.Limits.divided>` (per_host and concurrency rounded up, so each
share may run at least one).
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.lock
import gevent.queue

from ._frames import FrameWriter, read_frame
from ._serving import serve_share
from ..config import FetchOptions
from ..errors import BatchFetchError
from .base import RowEvent
from .local import LocalEngine

__all__ = ["ProcessEngine"]


def _worker_options(options: FetchOptions) -> FetchOptions:
    """The options each of ``options.workers`` shares runs with: the limits divided."""
    return options.replace(workers=1, limits=options.limits.divided(options.workers))


class _Worker:
    """One worker process and the items it has not answered yet."""

    def __init__(self) -> None:
        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent,
                                                          env.get("PYTHONPATH")]))
        # gevent patches subprocess: these pipes are cooperative in this process.
        self.process = subprocess.Popen([sys.executable, "-m", "batchfetch.engines._process_child"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        env=env)
        self.outstanding: dict[int, tuple[int, Any]] = {}  # serial -> (input index, item)
        self.alive = True
        self.admitted = False  # given its options: it may be handed items
        self._frames = FrameWriter(self.process.stdin)

    def send(self, message: Any) -> bool:
        """Queue a frame for the worker; False when it is known to be gone."""
        try:
            self._frames.write(message)
            return True
        except OSError:  # the worker died; its reader greenlet reports it too
            return False

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._frames.flush()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class _OwnShare:
    """This process's share: a LocalEngine given items as a worker process is."""

    admitted = True

    def __init__(self, options: FetchOptions, events: gevent.queue.Queue) -> None:
        self.outstanding: dict[int, tuple[int, Any]] = {}  # serial -> (input index, item)
        self.alive = True
        self._items: gevent.queue.Queue = gevent.queue.Queue()
        self.engine = LocalEngine(options)
        self._greenlet = gevent.spawn(self._serve, events)

    def _serve(self, events: gevent.queue.Queue) -> None:
        try:
            serve_share(self.engine, self._items.get,
                        lambda serial, row, exception: events.put(
                            ("row", self, serial, row, exception)))
        except gevent.GreenletExit:
            raise
        except BaseException as exc:  # noqa: BLE001 - the caller's to see, not this greenlet's
            events.put(("failed", exc))

    def send(self, message: Any) -> bool:
        self._items.put(message)
        return True

    def take_back(self) -> list[tuple[int, int, Any]]:
        """The items handed to it that its engine has not pulled yet, as ``(serial,
        index, item)``: no longer its own."""
        taken = []
        while not self._items.empty():
            _, serial, index, item = self._items.get_nowait()
            del self.outstanding[serial]
            taken.append((serial, index, item))
        return taken

    def stop(self) -> None:
        self._greenlet.kill(block=True)
        self.engine.close()


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

    def run(self, pairs: Iterator[tuple[int, Any]]) -> Iterator[RowEvent]:
        """One RowEvent per ``(index, item)`` pair, in completion order (see Engine)."""
        return _sharded_events(pairs, self.options)

    def close(self) -> None:
        """Nothing to release: each run starts and stops its own worker processes."""


def _sharded_events(pairs: Iterator[tuple[int, Any]],
                    options: FetchOptions) -> Iterator[RowEvent]:
    worker_options = _worker_options(options)
    events: gevent.queue.Queue = gevent.queue.Queue()
    # The whole concurrency until the worker processes have started; first in the list,
    # so that it takes the first items.
    own = _OwnShare(worker_options.replace(limits=dataclasses.replace(
        worker_options.limits, concurrency=options.concurrency)), events)
    workers: list[Any] = [own]
    started: gevent.queue.Queue = gevent.queue.Queue()  # worker processes ready for options
    room = gevent.lock.Semaphore(options.pending_limit)
    greenlets = []
    try:
        workers += [_Worker() for _ in range(options.workers - 1)]
        for worker in workers[1:]:
            greenlets.append(gevent.spawn(_read_rows, worker, events))
        greenlets.append(gevent.spawn(_admit, started, workers, worker_options,
                                      options.concurrency))
        greenlets.append(gevent.spawn(_feed, pairs, workers, room, events))
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
            elif kind == "started":
                started.put(event[1])
            elif kind == "row":
                _, worker, serial, row, exception = event
                _, item = worker.outstanding.pop(serial)
                owed -= 1
                room.release()
                yield RowEvent(row, exception, item)
            else:  # "exited": hand what the worker left unanswered to the others
                worker = event[1]
                worker.alive = False
                left, worker.outstanding = worker.outstanding, {}
                for serial, (index, item) in sorted(left.items()):
                    _hand(workers, serial, index, item)
    finally:
        gevent.killall(greenlets, block=True, timeout=1.0)
        for worker in workers:
            worker.stop()


def _read_rows(worker: _Worker, events: gevent.queue.Queue) -> None:
    """Pass a worker's rows on; say so when it exits before its last row."""
    while True:
        frame = read_frame(worker.process.stdout)
        if frame is None:
            events.put(("exited", worker))
            return
        if frame[0] == "done":
            return
        if frame[0] == "ready":
            events.put(("started", worker))
            continue
        _, serial, row, exception = frame
        events.put(("row", worker, serial, row, exception))


def _admit(started: gevent.queue.Queue, workers: list[Any], worker_options: FetchOptions,
           concurrency: int) -> None:
    """Give each worker process that has started its share: this process's share first
    gives up as much, then hands over the items it has not started."""
    own, share, admitted = workers[0], worker_options.concurrency, 0
    while True:
        worker = started.get()
        limit = max(1, concurrency - (admitted + 1) * share)
        own.engine.limit(limit)
        # Its attempts over the new limit end within one response each: only then may
        # the worker start its own, so the shares never hold more than the whole.
        while not own.engine.within(limit):
            gevent.sleep(0.005)
        if not (worker.alive and worker.send(worker_options)):
            own.engine.limit(max(1, concurrency - admitted * share))
            continue
        admitted += 1
        worker.admitted = True
        for serial, index, item in own.take_back():
            _hand(workers, serial, index, item)


def _hand(workers: list[Any], serial: int, index: int, item: Any) -> None:
    """Give an item (the ``serial``-th pulled) to the live share with the least outstanding."""
    while True:
        live = [worker for worker in workers if worker.alive and worker.admitted]
        if not live:
            raise BatchFetchError("every worker process exited before the run ended")
        worker = min(live, key=lambda w: len(w.outstanding))
        worker.outstanding[serial] = index, item
        if worker.send(("item", serial, index, item)):
            return
        del worker.outstanding[serial]
        worker.alive = False


def _feed(pairs: Iterator[tuple[int, Any]], workers: list[_Worker],
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
            _hand(workers, serial, index, item)
            events.put(("fed",))
    except gevent.GreenletExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the caller's input failed: raise it there
        events.put(("failed", exc))
        return
    events.put(("input done",))
