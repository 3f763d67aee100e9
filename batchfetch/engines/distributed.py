"""The distributed engine (``broker=``): a batch fetched by ``batchfetch-worker`` processes
on any number of machines, through Celery (gevent pool) and a Redis broker.

This process, the driver, cuts the input into chunks of ``chunk_size`` items and sends
each as a Celery task with the run's options as JSON. Workers send the rows back on the
run's ``rows`` list in Redis, which the driver reads as they come and yields to the same
run loop as local runs (writers, hooks, ``--resume``).

Fetching is at least once, rows are exactly once: a chunk whose worker died is sent again,
and the run loop keeps the first row of each input. Recovery does not rest on kombu's
redelivery, which never comes under the gevent pool (celery/celery#4976): a worker holds
a lease on each chunk it has received, renewed every third of ``lease``; the driver
checks the leases of the chunks taken and not done, and sends the unanswered inputs of a
lapsed one again, as a new chunk. A lapsed chunk that had started loses its
non-idempotent inputs (POST, PATCH) as ``lost`` rows instead, unless
``retry_non_idempotent``: its worker may have sent them.
"""
from __future__ import annotations

import itertools
import logging
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.lock
import gevent.queue

from .._version import __version__
from ..config import FetchOptions
from ..errors import BrokerError, ErrorKind, OptionError
from ..inputs import error_row, item_method
from ..methods import IDEMPOTENT_METHODS
from ..results import FetchResult
from . import _broker
from ._broker import (KEY_TTL, PROTOCOL, QUEUE, TASK, RunKeys, chunk_task_id, wire_item,
                      wire_options)
from ._shared_storage import check_probe_answer, put_marker, remove_marker
from .base import RowEvent

__all__ = ["DistributedEngine"]

log = logging.getLogger("batchfetch")

#: Seconds with chunks sent and none taken before the driver says no worker is there.
NO_WORKER_HINT = 10.0
#: The most chunks out at once (sent, not finished), whatever the input's size: what the
#: driver holds in memory and what waits in Redis.
CHUNKS_OUT = 64
#: Seconds an incomplete chunk waits for more input (a slow pipe) before it is sent.
FILL_WAIT = 0.25
#: A chunk is sent once its items reach this many bytes as JSON, whatever chunk_size says.
CHUNK_BYTES = 4 * 1024 * 1024
#: Times an input is sent to workers before it gets a ``lost`` row (each went away, or
#: failed the chunk): a poison input must not go round forever.
MAX_SENDS = 3


class _Chunk:
    """A chunk sent and not finished: its inputs still owed a row, and what the workers
    said of it."""

    __slots__ = ("number", "owed", "state", "worker", "sent")

    def __init__(self, number: int, serials: list[int]) -> None:
        self.number = number
        self.owed = set(serials)
        self.state = "sent"  # then "taken" (a worker holds it), then "started"
        self.worker = ""
        self.sent = time.monotonic()


class DistributedEngine:
    """Runs each batch on the ``batchfetch-worker`` processes of ``options.broker``.

    ``concurrency``, ``per_host`` and ``max_pending`` hold per worker process (each also
    within its worker's ``--max-in-flight``); ``rate`` holds for the whole run. Options
    and items travel through Redis as JSON, credentials included.

    Example (``engine.run`` needs a broker with a worker: see tests/test_distributed.py)::

        >>> from batchfetch import FetchOptions
        >>> engine = DistributedEngine(FetchOptions(broker="redis://:pw@127.0.0.1:6379/0"))
        >>> engine.broker, engine.wire_options["broker"], engine.wire_options["concurrency"]
        ('redis://:***@127.0.0.1:6379/0', None, 16)
    """

    def __init__(self, options: FetchOptions) -> None:
        if options.broker is None:
            raise OptionError("broker", None, "a Redis URL for the distributed engine")
        missing = _missing_extra()
        if missing:
            raise OptionError("broker", options.broker, "", missing)
        if options.save_dir is not None:  # a relative one would be another place per worker
            options = options.replace(save_dir=os.path.abspath(options.save_dir))
        self.options = options
        # Checked now: an option that cannot travel fails before anything is sent.
        self.wire_options = wire_options(options)
        self._app: Any = None
        self._client: Any = None
        self._quick: Any = None  # gives up in 5 s: the first check, the clean-up
        self._in_flight: dict[str, int] = {}  # by worker, as of its latest message

    @property
    def broker(self) -> str:
        return _broker.shown_broker(self.options.broker)

    def run(self, pairs: Iterator[tuple[int, Any]]) -> Iterator[RowEvent]:
        """One RowEvent per ``(index, item)`` pair, in completion order (see Engine)."""
        if self._app is None:
            self._app = _broker.make_app(self.options.broker)
            self._client = _broker.redis_client(self.options.broker)
            self._quick = _broker.redis_client(self.options.broker, quick=True)
        return _DriverRun(self, pairs).events()

    @property
    def in_flight(self) -> int:
        """Requests in flight on the workers, as each said with its latest rows."""
        return sum(self._in_flight.values())

    def close(self) -> None:
        """Close the connections to the broker."""
        if self._app is not None:
            self._app.close()
            self._client.close()
            self._quick.close()
            self._app = self._client = self._quick = None


class _DriverRun:
    """One batch on the workers: the feeder, the reader of rows and the watch on leases
    put what happens on one queue, which :meth:`events` turns into RowEvents."""

    def __init__(self, engine: DistributedEngine, pairs: Iterator[tuple[int, Any]]) -> None:
        self.engine, self.options, self.pairs = engine, engine.options, pairs
        self.client, self.app = engine._client, engine._app
        self.keys = RunKeys(uuid.uuid4().hex[:16])
        self.happened: gevent.queue.Queue = gevent.queue.Queue()
        # serial -> [index, item, its chunk, the item as JSON carries it, its size, sends]
        self.owed: dict[int, list[Any]] = {}
        self.chunks: dict[int, _Chunk] = {}
        self.chunk_numbers = itertools.count()
        self.room = gevent.lock.Semaphore(CHUNKS_OUT)
        self.serials = itertools.count()
        self.taken_any = False
        self.duplicates = 0

    # -- the loop --------------------------------------------------------------

    def events(self) -> Iterator[RowEvent]:
        greenlets: list[gevent.Greenlet] = []
        finished = broken = False
        try:
            # A quick first word: a port that never answers, or TLS against plain Redis,
            # fails in seconds rather than after the main client's patience.
            self._redis(self._keep_alive, self.engine._quick)
            if self.options.save_dir:
                self._probe_save_dir()
            greenlets = [gevent.spawn(self._feed), gevent.spawn(self._read_rows),
                         gevent.spawn(self._watch)]
            fed_all = False
            while not fed_all or self.owed or self.chunks:
                what, *details = self.happened.get()
                if what == "rows":
                    yield from self._rows(*details)
                elif what == "event":
                    yield from self._event(details[0])
                elif what == "lapsed":
                    yield from self._lapsed(details[0])
                elif what == "row":  # an item that cannot travel: its row, made here
                    yield details[0]
                elif what == "input done":
                    fed_all = True
                elif what == "failed":
                    raise details[0]
            finished = True
        except BrokerError:
            broken = True
            raise
        finally:
            gevent.killall(greenlets, block=True, timeout=1.0)
            self._clean_up(cancelled=not finished, broken=broken)
        if self.duplicates:
            log.info("dropped %d second rows of inputs sent twice", self.duplicates)

    def _rows(self, message: dict[str, Any]) -> Iterator[RowEvent]:
        self.engine._in_flight[message.get("w", "")] = message.get("f", 0)
        header_columns = self.options.header_columns
        for serial, record in message["rows"]:
            owed = self.owed.pop(serial, None)
            if owed is None:
                self.duplicates += 1
                continue
            index, item, number = owed[:3]
            chunk = self.chunks.get(number)
            if chunk is not None:
                chunk.owed.discard(serial)
            row = FetchResult.from_record(record, header_columns)
            yield RowEvent(row, None, item)
            if chunk is not None and not chunk.owed:
                self._finished(chunk)

    def _event(self, message: dict[str, Any]) -> Iterator[RowEvent]:
        chunk = self.chunks.get(message["c"])
        if chunk is None:
            return
        what = message["e"]
        if what in ("taken", "started"):
            self.taken_any = True
            chunk.worker = message.get("w", "")
            if chunk.state != "started":
                chunk.state = what
        elif what == "done" and chunk.owed:  # it answered everything it could
            yield from self._lapsed(chunk.number, "its worker ended it without a row")
        elif what == "skipped":  # the worker saw this run as over: a pause of ours
            self._redis(self._keep_alive, self.client)  # before it goes again
            for serial in chunk.owed:
                self.owed[serial][5] -= 1  # not a send that failed
            yield from self._lapsed(chunk.number, "a worker skipped it (the run looked over)")
        elif what == "refused":
            for serial in sorted(chunk.owed):
                index, item = self.owed.pop(serial)[:2]
                yield RowEvent(self._lost_row(index, item, message["m"]), None, item)
            chunk.owed.clear()
            self._finished(chunk)

    def _finished(self, chunk: _Chunk) -> None:
        del self.chunks[chunk.number]
        self.room.release()

    def _lapsed(self, number: int, why: str = "its worker's lease lapsed"
                ) -> Iterator[RowEvent]:
        """Send the inputs of a chunk whose worker went away again, as a new chunk; an
        input sent :data:`MAX_SENDS` times, or a non-idempotent one its worker may have
        sent, gets a ``lost`` row instead."""
        chunk = self.chunks.pop(number, None)
        if chunk is None:
            return
        pipe = self.client.pipeline(transaction=False)
        pipe.sadd(self.keys.done, number)  # a late copy of it is skipped
        pipe.expire(self.keys.done, KEY_TTL)
        self._redis(pipe.execute)
        started = chunk.state == "started"
        resend: list[int] = []
        for serial in sorted(chunk.owed):
            index, item, _, _, _, sends = self.owed[serial]
            message = ""
            if sends >= MAX_SENDS:
                message = (f"sent to workers {sends} times, and none answered (the last: "
                           f"{why})")
            elif started and not self.options.retry_non_idempotent and (
                    item_method(item, self.options.method) not in IDEMPOTENT_METHODS):
                message = (f"{why} while the chunk ran ({chunk.worker or 'a worker'}): it may "
                           "have been sent, and is not sent again (retry_non_idempotent "
                           "sends it)")
            if message:
                del self.owed[serial]
                yield RowEvent(self._lost_row(index, item, message), None, item)
            else:
                resend.append(serial)
        log.warning("chunk %d (%s): %s; %s", number, chunk.worker or "not taken yet", why,
                    f"sending its {len(resend)} unanswered inputs again" if resend
                    else "no input of it is sent again")
        if resend:
            self._send(resend)  # takes the lapsed chunk's place in the window
        else:
            self.room.release()

    # -- greenlets ---------------------------------------------------------------

    def _feed(self) -> None:
        """Pull the input into chunks and send each, at most CHUNKS_OUT out at once."""
        pulled: gevent.queue.Queue = gevent.queue.Queue(self.options.chunk_size)
        puller = gevent.spawn(self._pull, pulled)
        try:
            ended = False
            while not ended:
                self.room.acquire()
                batch: list[int] = []
                size = 0
                timeout = None  # the first item of a chunk is waited for as long as it takes
                while len(batch) < self.options.chunk_size and size < CHUNK_BYTES:
                    try:
                        pair = pulled.get(timeout=timeout)
                    except gevent.queue.Empty:
                        break
                    if pair is None:
                        ended = True
                        break
                    serial = self._admit(*pair)
                    if serial is not None:
                        batch.append(serial)
                        size += self.owed[serial][4]
                    timeout = FILL_WAIT
                if batch:
                    self._send(batch)
                else:
                    self.room.release()
            self.happened.put(("input done",))
        except gevent.GreenletExit:
            raise
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's loop
            self.happened.put(("failed", exc))
        finally:
            puller.kill(block=False)

    def _pull(self, pulled: gevent.queue.Queue) -> None:
        try:
            for pair in self.pairs:
                pulled.put(pair)
            pulled.put(None)
        except gevent.GreenletExit:
            raise
        except BaseException as exc:  # noqa: BLE001 - the caller's input failed: raise it there
            self.happened.put(("failed", exc))

    def _admit(self, index: int, item: Any) -> int | None:
        """The serial of an item that can travel as JSON; an error row for one that cannot."""
        serial = next(self.serials)
        try:
            wire, size = wire_item(item)
        except (OptionError, ValueError) as exc:
            row = error_row(index, item, self.options.method, ErrorKind.INVALID_REQUEST,
                            str(exc))
            self.happened.put(("row", RowEvent(row, None, item)))
            return None
        self.owed[serial] = [index, item, -1, wire, size, 0]
        return serial

    def _send(self, serials: list[int]) -> None:
        number = next(self.chunk_numbers)
        chunk = self.chunks[number] = _Chunk(number, serials)
        items = []
        for serial in serials:
            owed = self.owed[serial]
            owed[2] = number
            owed[5] += 1
            items.append([serial, owed[0], owed[3]])
        message = {"protocol": PROTOCOL, "version": __version__, "run": self.keys.run,
                   "chunk": number, "options": self.engine.wire_options, "items": items,
                   "time_limit": self.options.chunk_time_limit}
        self._redis(self.app.send_task, TASK, args=[message], queue=QUEUE,
                    task_id=chunk_task_id(self.keys.run, number))
        chunk.sent = time.monotonic()

    def _read_rows(self) -> None:
        """Move the workers' messages from Redis to the loop, a batch at a time."""
        try:
            while True:
                popped = self._redis(self.client.blpop, [self.keys.rows], timeout=1)
                if popped is None:
                    continue
                pipe = self.client.pipeline(transaction=True)  # LPOP's count needs Redis 6.2
                pipe.lrange(self.keys.rows, 0, 499)
                pipe.ltrim(self.keys.rows, 500, -1)
                raws = [popped[1], *self._redis(pipe.execute)[0]]
                for raw in raws:
                    message = _broker.loads(raw)
                    self.happened.put(("rows", message) if "rows" in message
                                      else ("event", message))
        except gevent.GreenletExit:
            raise
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's loop
            self.happened.put(("failed", exc))

    def _watch(self) -> None:
        """Keep the run alive and report the chunks whose worker's lease lapsed."""
        period = min(5.0, max(0.2, self.options.lease / 3))
        hinted = NO_WORKER_HINT  # seconds without a chunk taken before the next hint
        try:
            while True:
                gevent.sleep(period)
                pipe = self.client.pipeline(transaction=False)
                self._keep_alive(pipe)
                for key in (self.keys.rows, self.keys.done, self.keys.rate):
                    pipe.expire(key, KEY_TTL)
                self._redis(pipe.execute)
                held = [chunk for chunk in self.chunks.values()
                        if chunk.state in ("taken", "started")]
                if held:
                    pipe = self.client.pipeline(transaction=False)
                    for chunk in held:
                        pipe.exists(self.keys.lease(chunk.number))
                        pipe.sismember(self.keys.done, chunk.number)
                    answers = self._redis(pipe.execute)
                    for position, chunk in enumerate(held):
                        if not answers[2 * position] and not answers[2 * position + 1]:
                            self.happened.put(("lapsed", chunk.number))
                waited = time.monotonic() - min(
                    (chunk.sent for chunk in self.chunks.values()), default=time.monotonic())
                if not self.taken_any and waited > hinted:
                    hinted += 60.0  # then once a minute
                    log.warning("no worker has taken a chunk in %.0f s: start "
                                "`batchfetch-worker --broker %s` where the fetching runs",
                                waited, self.engine.broker)
        except gevent.GreenletExit:
            raise
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's loop
            self.happened.put(("failed", exc))

    # -- the rest ----------------------------------------------------------------

    def _probe_save_dir(self) -> None:
        """The bodies a worker saves must be where this machine and every worker see
        them: put the run's marker there for the workers, and have one write a probe
        file to read back here (:mod:`._shared_storage`)."""
        token = uuid.uuid4().hex
        put_marker(self.options.save_dir, self.keys.run)
        self._redis(self.app.send_task, TASK, queue=QUEUE, args=[{
            "protocol": PROTOCOL, "version": __version__, "run": self.keys.run,
            "probe": token, "save_dir": self.options.save_dir}])
        started, hinted = time.monotonic(), False
        while True:
            popped = self._redis(self.client.blpop, [self.keys.rows], timeout=1)
            if popped is not None and _broker.loads(popped[1]).get("probe") == token:
                answer = _broker.loads(popped[1])
                break
            # The watch has not started: keep the run alive while no worker answers.
            self._redis(self._keep_alive, self.client)
            if not hinted and time.monotonic() - started > NO_WORKER_HINT:
                hinted = True
                log.warning("no worker has answered in %.0f s: start `batchfetch-worker "
                            "--broker %s` where the fetching runs", NO_WORKER_HINT,
                            self.engine.broker)
        check_probe_answer(self.options.save_dir, token, answer["w"], answer["file"],
                           answer["error"])

    def _lost_row(self, index: int, item: Any, message: str) -> FetchResult:
        return error_row(index, item, self.options.method, ErrorKind.LOST, message)

    def _keep_alive(self, client: Any) -> Any:
        """Set the run's ``alive`` key (through ``client``: a client or a pipeline), its
        value the lease workers hold chunks for. Its life is long against a pause of this
        process (a worker that finds the run over tells us, and its chunk is sent again),
        short against a driver that died."""
        return client.set(self.keys.alive, _broker.dumps({"lease": self.options.lease}),
                          ex=int(max(120, 3 * self.options.lease)))

    def _clean_up(self, cancelled: bool, broken: bool) -> None:
        """Delete the run's keys; on a cancel, first tell every worker to start no chunk
        of the run (the cancel key, and Celery's revoke of the chunks out)."""
        if self.options.save_dir:
            remove_marker(self.options.save_dir, self.keys.run)
        if broken:
            return  # nothing to tell the broker: the run's keys expire by themselves
        client = self.engine._quick  # it may be slow: give up in seconds
        try:
            if cancelled:
                client.set(self.keys.cancel, 1, ex=KEY_TTL)  # workers look until then
                client.delete(self.keys.alive)
                out = [chunk_task_id(self.keys.run, n) for n in self.chunks]
                if out:
                    self.app.control.revoke(out)
            client.delete(*[key for key in self.keys.all() if key != self.keys.cancel])
        except Exception as exc:  # noqa: BLE001 - the broker is gone: its keys expire alone
            log.debug("could not clean up the run's keys: %s", exc)

    def _redis(self, call: Any, *args: Any, **keywords: Any) -> Any:
        """``call(*args, **keywords)``, a broker that went away raised as BrokerError."""
        try:
            return call(*args, **keywords)
        except Exception as exc:
            if _is_broker_error(exc):
                raise BrokerError(self.engine.broker, exc) from exc
            raise


def _missing_extra() -> str:
    """What to install for the distributed engine, if Celery or redis-py is missing."""
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError as exc:
        return (f"the distributed engine needs Celery and redis-py ({exc.name} is not "
                "installed): pip install 'batchfetch[celery]'")
    return ""


def _is_broker_error(exc: BaseException) -> bool:
    import kombu.exceptions
    import redis.exceptions

    # RedisError: also a database number out of range, a port that speaks another protocol
    return isinstance(exc, (redis.exceptions.RedisError, kombu.exceptions.OperationalError,
                            OSError))
