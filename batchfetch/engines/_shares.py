"""The shares of a batch the process engine splits: this process's own (a LocalEngine fed
as a worker process is), each worker process, and which share takes each item.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from typing import Any

import gevent
import gevent.queue

from ._frames import FrameWriter, read_frame
from ._serving import serve_share
from .._cache import BoundedCache
from ..config import FetchOptions
from ..errors import BatchFetchError
from .local import LocalEngine

__all__ = ["OwnShare", "Shares", "WorkerProcess", "read_rows"]


class WorkerProcess:
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
        self.ready = False  # said it has started
        self.admitted = False  # given its options: it may be handed items
        #: Its requests in flight, as it said with its latest row.
        self.in_flight = 0
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


class OwnShare:
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


def read_rows(worker: WorkerProcess, events: gevent.queue.Queue,
               started: gevent.queue.Queue) -> None:
    """Pass a worker's first word to ``started`` and its rows to ``events``; say so when
    it exits before its last row (to ``started`` too, if it had not started)."""
    while True:
        frame = read_frame(worker.process.stdout)
        if frame is None:
            worker.alive = False
            if not worker.ready:
                started.put(worker)  # it never will say it has started
            events.put(("exited", worker))
            return
        if frame[0] == "done":
            return
        if frame[0] == "ready":
            worker.ready = True
            started.put(worker)
            continue
        _, serial, row, exception, worker.in_flight = frame
        events.put(("row", worker, serial, row, exception))


class Shares:
    """The shares of one run (this process's first) and which takes each item.

    An item goes to the share its origin's last item went to, while that share has no
    more than ``slack`` items outstanding beyond the least busy one; else to the least
    busy. Keeping an origin in one share keeps its connections there: two shares that
    each saw every host of W6 (250 hosts, 100 connections each) opened 11,000
    connections for 20,000 requests, where one process opens 4,600.
    """

    def __init__(self, own: OwnShare, slack: int) -> None:
        self.all: list[Any] = [own]
        self.slack = slack
        self._places = BoundedCache(_ORIGINS_PLACED)  # origin -> share

    def hand(self, serial: int, index: int, item: Any) -> None:
        """Give an item (the ``serial``-th pulled) to a live share."""
        while True:
            live = [share for share in self.all if share.alive and share.admitted]
            if not live:
                raise BatchFetchError("every worker process exited before the run ended")
            least = min(live, key=lambda share: len(share.outstanding))
            origin = _origin(item)
            share = self._places.get(origin)
            if share is None or share not in live or \
                    len(share.outstanding) > len(least.outstanding) + self.slack:
                share = self._places.remember(origin, least)
            share.outstanding[serial] = index, item
            try:
                if share.send(("item", serial, index, item)):
                    return
            except (pickle.PicklingError, TypeError, AttributeError):
                del share.outstanding[serial]  # it cannot travel: this process fetches it
                share = self.all[0]
                share.outstanding[serial] = index, item
                share.send(("item", serial, index, item))
                return
            del share.outstanding[serial]
            share.alive = False

    def working(self) -> int:
        """Worker processes that have their share and are alive."""
        return sum(1 for share in self.all[1:] if share.alive and share.admitted)

    def in_flight(self) -> int:
        """Requests in flight: this process's now, each worker's as of its latest row."""
        own, *workers = self.all
        return own.engine.in_flight + sum(worker.in_flight for worker in workers
                                          if worker.alive)

    def replace_all(self) -> None:
        """Forget where each origin went: its next item goes to the least busy share."""
        self._places.clear()


#: Origins whose share is remembered; past this many, all are placed afresh.
_ORIGINS_PLACED = 65536


def _origin(item: Any) -> str | None:
    """``scheme://authority`` of an item's URL, lowercased, as far as a glance tells (a
    placement hint: a wrong guess costs connections, not correctness)."""
    url = item if isinstance(item, str) else (
        item.get("url") if isinstance(item, dict) else getattr(item, "url", None))
    if not isinstance(url, str):
        return None
    start = url.find("//") + 2
    end = url.find("/", start)
    return url[:end if end >= 0 else len(url)].lower()
