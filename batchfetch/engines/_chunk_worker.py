"""The worker side of the distributed engine: the chunk task, the leases a worker process
holds, and the local runs that fetch its chunks.

A worker process keeps one :class:`~batchfetch.engines.local.LocalEngine` run per
distributed run (its session, connections and limits), fed by every chunk of that run
it takes, so the limits hold per process whatever the number of Celery slots.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.queue

from .._options_json import _decoded
from .._version import __version__
from ..config import FetchOptions
from ..errors import ErrorKind
from ..inputs import error_row
from ..results import FetchResult
from ..scheduling.shared_rate import SharedStartRate
from . import _broker
from ._broker import KEY_TTL, PROTOCOL, RunKeys
from ._leases import Leases
from ._shared_storage import answer_probe, not_shared
from .local import LocalEngine

__all__ = ["WorkerProcess"]

log = logging.getLogger("batchfetch")

#: A chunk's rows go to the driver at least this often (seconds), or sooner when this many
#: rows or bytes are waiting.
FLUSH_EVERY, FLUSH_ROWS, FLUSH_BYTES = 0.25, 200, 1024 * 1024
#: Local runs kept at once (one per distributed run); an idle one over this is closed.
RUNS_KEPT = 4
#: Seconds a local run with no chunk may stay open.
RUN_IDLE = 60.0

class _ChunkOnWorker:
    """One chunk being fetched here: its rows as they come, until each input has one."""

    def __init__(self, items: list[list[Any]]) -> None:
        self.owed = {serial: (index, item) for serial, index, item in items}
        self.rows: gevent.queue.Queue = gevent.queue.Queue()
        self.cancelled = False

    def answer(self, serial: int, row: FetchResult | None) -> None:
        self.rows.put((serial, row))


class _LocalRun:
    """A LocalEngine run kept open across the chunks of one distributed run: chunks put
    their items in, and each row goes back to the chunk of its item."""

    def __init__(self, options: FetchOptions, start_rate: Any = None) -> None:
        self.options = options  # as the run asked: the engine's limits are its share
        self.engine = LocalEngine(options, start_rate)
        self.inbox: gevent.queue.Queue = gevent.queue.Queue()
        self.routes: dict[int, list[tuple[_ChunkOnWorker, int]]] = {}  # id(item) -> chunks
        self.chunks = 0
        self.cancelled = False  # the driver cancelled the run (or went away)
        self.idle_since = time.monotonic()
        self.greenlet = gevent.spawn(self._serve)

    def put(self, chunk: _ChunkOnWorker) -> None:
        for serial, (index, item) in chunk.owed.items():
            self.inbox.put((chunk, serial, index, item))

    def _pairs(self) -> Iterator[tuple[int, Any]]:
        while True:
            entry = self.inbox.get()
            if entry is None:
                return
            chunk, serial, index, item = entry
            if chunk.cancelled:
                chunk.answer(serial, None)
                continue
            self.routes.setdefault(id(item), []).append((chunk, serial))
            yield index, item

    def _serve(self) -> None:
        for row, _exception, item in self.engine.run(self._pairs()):
            waiting = self.routes[id(item)]
            chunk, serial = waiting.pop(0)
            if not waiting:
                del self.routes[id(item)]
            chunk.answer(serial, row)

    def close(self) -> None:
        self.greenlet.kill(block=True, timeout=1.0)
        self.engine.close()


class WorkerProcess:
    """What one worker process holds: its Redis client, its leases, its local runs.

    ``max_in_flight`` caps each run's ``concurrency`` (and ``per_host``) here.
    """

    def __init__(self, broker: str, max_in_flight: int, name: str) -> None:
        self.client = _broker.redis_client(broker)
        self.max_in_flight = max_in_flight
        self.name = name
        self.token = f"{name}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.leases = Leases(self.client, self.token)
        self.running: set[str] = set()  # the leases of the chunks running here
        self.runs: collections.OrderedDict[tuple[str, str], _LocalRun] = \
            collections.OrderedDict()
        self.writable: dict[tuple[str, str], str] = {}  # (run, save_dir) -> "" or the error
        self.renewer = gevent.spawn(self._renew_leases)

    # -- called by Celery --------------------------------------------------------

    def received(self, task_id: str) -> None:
        """A chunk arrived (it may wait for a slot): hold its lease from now."""
        parsed = _broker.parse_task_id(task_id)
        if parsed is None:
            return
        run, number = parsed
        keys = RunKeys(run)
        try:
            alive = self.client.get(keys.alive)
            if alive is None:
                return  # the run is over: the chunk is skipped when it runs
            lease_ms = int(json.loads(alive)["lease"] * 1000)
            if self.leases.take(keys.lease(number), lease_ms):
                self._tell(keys, {"e": "taken", "c": number, "w": self.name})
        except Exception as exc:  # noqa: BLE001 - the broker away: the chunk's run says so
            log.warning("could not lease chunk %d of run %s: %s", number, run, exc)

    def run_chunk(self, message: dict[str, Any]) -> None:
        """Fetch one chunk and send its rows to the driver (the Celery task's body). A
        broker that goes away meanwhile ends it with one warning: the lease lapses, and
        the driver sends the chunk again (or stopped, having lost the broker too)."""
        import redis

        try:
            self._run_chunk(message)
        except redis.exceptions.RedisError as exc:
            log.warning("chunk %s of run %s stopped: lost the broker: %s",
                        message.get("chunk"), message.get("run"), exc)

    def _run_chunk(self, message: dict[str, Any]) -> None:
        keys = RunKeys(message["run"])
        if "probe" in message:
            self._probe(keys, message)
            return
        number = message["chunk"]
        lease = keys.lease(number)
        if lease in self.running:  # a copy kombu put back while the chunk runs here
            log.info("skipped a copy of chunk %d of run %s: it runs here", number, keys.run)
            return  # (its lease stays with the run)
        try:
            if message.get("version") != __version__ or message.get("protocol") != PROTOCOL:
                self._tell(keys, {"e": "refused", "c": number, "w": self.name, "m": (
                    f"worker {self.name} runs batchfetch {__version__}, and this run is "
                    f"batchfetch {message.get('version')}: run the same version on the "
                    "driver and every worker")})
                return
            alive, cancelled, done = self._redis_many(
                ("get", keys.alive), ("exists", keys.cancel), ("sismember", keys.done, number))
            if cancelled or done:
                log.info("skipped chunk %d of run %s (cancelled or done)", number, keys.run)
                return
            if alive is None:  # the driver died, or paused: if it is there, it sends again
                self._tell(keys, {"e": "skipped", "c": number, "w": self.name})
                return
            if not self.leases.take(lease, int(json.loads(alive)["lease"] * 1000)):
                return  # another worker holds it (this is a late copy)
            self.running.add(lease)
            self._tell(keys, {"e": "started", "c": number, "w": self.name})
            log.info("started chunk %d of run %s at %.3f", number, keys.run, time.time())
            self._fetch(keys, number, message)
            pipe = self.client.pipeline(transaction=False)
            pipe.sadd(keys.done, number)
            pipe.expire(keys.done, KEY_TTL)
            pipe.execute()
            self._tell(keys, {"e": "done", "c": number, "w": self.name})
        finally:
            self.running.discard(lease)
            self.leases.drop(lease)

    # -- a chunk -------------------------------------------------------------------

    def _fetch(self, keys: RunKeys, number: int, message: dict[str, Any]) -> None:
        """Each input of the chunk gets a row: fetched, or an error row saying why this
        worker cannot fetch it (options it cannot take, a save_dir it cannot write)."""
        chunk = _ChunkOnWorker([[serial, index, _decoded("item", item)]
                                for serial, index, item in message["items"]])
        try:
            options = FetchOptions.from_dict(message["options"])
        except Exception as exc:  # noqa: BLE001 - a path in the options not on this machine
            self._send(keys, number, [(serial, self._error_row(
                index, item, message["options"].get("method") or "GET",
                ErrorKind.INVALID_REQUEST, f"worker {self.name} cannot run these options "
                f"(paths in them must exist on every worker): {exc}"))
                for serial, (index, item) in chunk.owed.items()], 0)
            return
        refusal = self._cannot_save(keys.run, options.save_dir)
        if refusal:
            self._send(keys, number, [(serial, self._error_row(
                index, item, options.method, ErrorKind.SAVE, refusal))
                for serial, (index, item) in chunk.owed.items()], 0)
            return
        local = self._local_run(keys.run, options)
        local.chunks += 1
        if local.chunks == 1:
            self._share_in_flight()
        try:
            local.put(chunk)
            self._collect(keys, number, chunk, local, options, message["time_limit"])
        finally:
            local.chunks -= 1
            local.idle_since = time.monotonic()
            chunk.cancelled = True  # its items still queued are not started
            if not local.chunks:
                self._share_in_flight()

    def _collect(self, keys: RunKeys, number: int, chunk: _ChunkOnWorker, local: _LocalRun,
                 options: FetchOptions, time_limit: float) -> None:
        """Send the chunk's rows as they come, until each input has one, the run is
        cancelled, or the time limit passes."""
        owed = dict(chunk.owed)
        batch: list[tuple[int, FetchResult]] = []
        size, last_flush = 0, time.monotonic()
        ends = last_flush + time_limit
        while owed:
            now = time.monotonic()
            # With rows waiting, until they are due to go; else until the next row (the
            # time limit and the cancel watch still apply).
            wake = min(last_flush + FLUSH_EVERY, ends) if batch else min(ends, now + 1.0)
            try:
                serial, row = chunk.rows.get(timeout=max(0.0, wake - now))
            except gevent.queue.Empty:
                serial = row = None
            if row is not None and serial in owed:
                del owed[serial]
                batch.append((serial, row))
                size += len(row.body or b"") + 300
            now = time.monotonic()
            if batch and (now >= last_flush + FLUSH_EVERY or len(batch) >= FLUSH_ROWS
                          or size >= FLUSH_BYTES):
                self._send(keys, number, batch, local.engine.in_flight)
                batch, size, last_flush = [], 0, now
            if local.cancelled:  # seen by the lease renewer
                chunk.cancelled = True
                log.info("run %s cancelled: chunk %d stops", keys.run, number)
                return
            if now >= ends:
                batch += [(serial, self._error_row(
                    index, item, options.method, ErrorKind.LOST,
                    f"the chunk's time limit ({time_limit:g} s) passed before this input "
                    f"had a row on worker {self.name}; what it had in flight is cancelled"))
                    for serial, (index, item) in owed.items()]
                # Its inputs the local run has taken in would still go out after their
                # lost rows: the run is closed (its other chunks here end, and the driver
                # sends their inputs again).
                self._close_local_runs(keys.run)
                break
        if batch:
            self._send(keys, number, batch, local.engine.in_flight)

    def _send(self, keys: RunKeys, number: int, batch: list[tuple[int, FetchResult]],
              in_flight: int) -> None:
        rows = [[serial, row.to_record(include_body=row.body is not None,
                                       headers=row.headers is not None)]
                for serial, row in batch]
        self._tell(keys, {"c": number, "w": self.name, "f": in_flight, "rows": rows})

    def _error_row(self, index: int, item: Any, method: str, kind: ErrorKind,
                   message: str) -> FetchResult:
        return error_row(index, item, method, kind, message)

    def _local_run(self, run: str, options: FetchOptions) -> _LocalRun:
        """The local run of ``run`` with ``options``, made if need be; the idle ones past
        :data:`RUNS_KEPT` or :data:`RUN_IDLE` are closed. Nothing here yields before the
        new run is in ``self.runs``: chunks of one run arrive at once, and must share it."""
        digest = hashlib.sha256(json.dumps(options.to_dict(), sort_keys=True).encode()
                                ).hexdigest()
        key = (run, digest)
        local = self.runs.get(key)
        if local is not None:
            self.runs.move_to_end(key)
            return local
        now = time.monotonic()
        idle = [old_key for old_key, old in self.runs.items() if not old.chunks and (
            len(self.runs) >= RUNS_KEPT or now - old.idle_since > RUN_IDLE)]
        closing = [self.runs.pop(old_key) for old_key in idle]
        # rate holds for the whole run: one schedule of slots in Redis for every worker
        shared = None if options.rate is None else SharedStartRate(
            self.client, RunKeys(run).rate, options.rate)
        local = self.runs[key] = _LocalRun(options, shared)
        for old in closing:
            gevent.spawn(old.close)
        return local

    def _share_in_flight(self) -> None:
        """Split --max-in-flight between the local runs with a chunk (one in the usual
        case), so this process never has more requests in flight than it says; called as
        a run's first chunk starts and its last ends."""
        busy = [local for local in self.runs.values() if local.chunks]
        share = max(1, self.max_in_flight // max(1, len(busy)))
        for local in busy:
            wanted = local.engine.options
            limits = dataclasses.replace(
                local.options.limits, concurrency=min(local.options.concurrency, share),
                per_host=None if local.options.per_host is None
                else min(local.options.per_host, share))
            if (wanted.concurrency, wanted.per_host) != (limits.concurrency, limits.per_host):
                local.engine.limit(limits)

    def _watch_cancels(self) -> None:
        """Close the local runs whose distributed run was cancelled or whose driver went
        away: their chunks stop, and their requests in flight are cancelled."""
        busy = {key[0] for key, local in self.runs.items() if local.chunks}
        if not busy:
            return
        pipe = self.client.pipeline(transaction=False)
        for run in busy:
            keys = RunKeys(run)
            pipe.exists(keys.cancel)
            pipe.exists(keys.alive)
        answers = pipe.execute()
        for position, run in enumerate(busy):
            if answers[2 * position] or not answers[2 * position + 1]:
                self._close_local_runs(run)

    def _close_local_runs(self, run: str) -> None:
        """Close the local runs of ``run``: their chunks here end, what they have in flight
        is cancelled."""
        for key in [key for key in self.runs if key[0] == run]:
            local = self.runs.pop(key)
            local.cancelled = True
            gevent.spawn(local.close)  # not here: the leases must be renewed on time
        self._share_in_flight()

    def _cannot_save(self, run: str, save_dir: str | None) -> str:
        """Why this worker cannot save the run's bodies ("" when it can, or without
        save_dir); looked at once per run."""
        if not save_dir:
            return ""
        key = (run, save_dir)
        if key not in self.writable:
            self.writable[key] = not_shared(save_dir, run, self.name)
        return self.writable[key]

    def _probe(self, keys: RunKeys, message: dict[str, Any]) -> None:
        """Write the driver's token in a file of save_dir, for it to read back."""
        name, error = answer_probe(message["save_dir"], message["probe"])
        self._tell(keys, {"probe": message["probe"], "w": self.name, "file": name,
                          "error": error})

    # -- Redis -----------------------------------------------------------------------

    def _tell(self, keys: RunKeys, message: dict[str, Any]) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(keys.rows, _broker.dumps(message))
        pipe.expire(keys.rows, KEY_TTL)
        pipe.execute()

    def _redis_many(self, *calls: tuple) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for name, *args in calls:
            getattr(pipe, name)(*args)
        return pipe.execute()

    def _renew_leases(self) -> None:
        """Renew every lease held, each every third of its length; watch for cancels."""
        while True:
            gevent.sleep(0.2)
            try:
                self._watch_cancels()
            except Exception as exc:  # noqa: BLE001 - Redis away: tried again soon
                log.warning("could not look for cancelled runs: %s", exc)
            self.leases.renew_due()
