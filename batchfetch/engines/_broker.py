"""What the driver and the workers of the distributed engine share: the Celery app and its
settings, a run's Redis keys, and the JSON messages on them.

A run's keys (``batchfetch:<run>:...``) live in the broker's Redis database:

- ``alive``: the driver is there (refreshed while it runs); its value is the run's lease
  in seconds. A worker skips the chunks of a run without it.
- ``cancel``: set by the driver on Ctrl-C; a worker starts no chunk of the run, and a
  chunk running stops taking its items.
- ``lease:<chunk>``: the worker holding the chunk (received or running), renewed while it
  does; when it lapses before the chunk is done, the driver sends its items again.
- ``done``: the chunks finished (or given up by the driver): a copy of such a chunk that
  arrives late is skipped.
- ``rows``: a list of JSON messages from the workers to the driver (rows and events).
- ``rate``: the time of the next start slot of ``rate`` (``rate:grants``: the slots
  granted by second).
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .._options_json import _encoded, options_to_dict
from ..headers import multipart_parts
from ..inputs import SPEC_KEYS, RequestSpec
from ..redaction import mask_broker

if TYPE_CHECKING:
    from ..config import FetchOptions

__all__ = ["QUEUE", "TASK", "RunKeys", "chunk_task_id", "parse_task_id", "make_app",
           "redis_client", "shown_broker", "PROTOCOL", "wire_item",
           "wire_options"]

#: The Celery queue chunks go to (a worker consumes it).
QUEUE = "batchfetch"
#: The name of the chunk task.
TASK = "batchfetch.chunk"
#: Bumped when a chunk's or a message's shape changes (the version check covers the rest).
PROTOCOL = 1
#: Every key of a run expires after this many seconds unless the driver renews it (it does
#: while the run lasts): what a dead driver, or a worker's late write, leaves goes soon.
KEY_TTL = 600
#: Seconds before the workers' restore sweep (``cli/worker.py``) puts an unacknowledged
#: chunk back on the queue. The leases bring back a dead worker's chunks much sooner; this
#: returns what they cannot see: a chunk whose worker died between taking the message and
#: leasing it. A copy put back while its chunk is held or done is skipped by the lease.
VISIBILITY_TIMEOUT = 300
#: The largest item, as JSON, a chunk carries (a request body included).
ITEM_LIMIT = 1024 * 1024
#: The largest options, as JSON, that go with every chunk (bodies and -F files included).
OPTIONS_LIMIT = 1024 * 1024


class RunKeys:
    """The Redis keys of one run."""

    def __init__(self, run: str) -> None:
        self.run = run
        prefix = f"batchfetch:{run}"
        self.alive = f"{prefix}:alive"
        self.cancel = f"{prefix}:cancel"
        self.done = f"{prefix}:done"
        self.rows = f"{prefix}:rows"
        self.rate = f"{prefix}:rate"
        self.grants = f"{self.rate}:grants"  # the rate's slots granted, by second
        self._lease = f"{prefix}:lease:"

    def lease(self, chunk: int) -> str:
        return f"{self._lease}{chunk}"

    def all(self) -> list[str]:
        """The run's keys but the leases (which expire by themselves)."""
        return [self.alive, self.cancel, self.done, self.rows, self.rate, self.grants]


def chunk_task_id(run: str, chunk: int) -> str:
    """The Celery task id of a chunk: the run and the chunk can be read back from it."""
    return f"batchfetch.{run}.{chunk}"


def parse_task_id(task_id: str) -> tuple[str, int] | None:
    """``(run, chunk)`` of :func:`chunk_task_id`, or None for another task's id."""
    parts = task_id.split(".")
    if len(parts) != 3 or parts[0] != "batchfetch" or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


def shown_broker(url: str) -> str:
    """The broker URL as outputs show it (:func:`~batchfetch.redaction.mask_broker`)."""
    return mask_broker(url)


def make_app(broker: str, prefetch: int = 2):
    """The Celery app of a driver or a worker of ``broker``.

    JSON only (no pickle on the broker); chunks are acknowledged when they end (a worker
    that dies before leaves them unacknowledged); no result backend: rows come back on the
    run's ``rows`` list, read and trimmed by the driver as they arrive.
    """
    from celery import Celery

    app = Celery("batchfetch", broker=broker, set_as_current=False)
    app.conf.update(
        task_serializer="json", accept_content=["json"], result_serializer="json",
        task_ignore_result=True, result_backend=None, task_acks_late=True,
        task_reject_on_worker_lost=True, worker_prefetch_multiplier=prefetch,
        task_default_queue=QUEUE, task_create_missing_queues=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
        worker_redirect_stdouts=False, broker_heartbeat=0)
    return app


def redis_client(url: str, quick: bool = False):
    """A Redis client of ``url`` whose calls give up instead of waiting forever, after
    trying again for about a second (a pause of this process, Ctrl-Z or a blocked hub,
    must not read as Redis gone). ``quick``: a client for checks and clean-up, which
    gives up after 5 s and does not try again (a port that accepts and never answers,
    TLS against plain Redis)."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    if quick:
        return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5,
                                    retry=Retry(ExponentialBackoff(), 0))
    return redis.Redis.from_url(
        url, socket_connect_timeout=10, socket_timeout=30, health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), 4),
        retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError])


def dumps(message: dict[str, Any]) -> str:
    # ASCII: a lone surrogate (a URL decoded with surrogateescape) travels as \udcff.
    return json.dumps(message, separators=(",", ":"))


def loads(raw: bytes | str) -> dict[str, Any]:
    return json.loads(raw)


def wire_options(options: FetchOptions) -> dict[str, Any]:
    """The options the workers run with, as JSON: files' contents inline (a worker cannot
    read this machine's files), no broker."""
    wire = options_to_dict(options.replace(broker=None))
    if options.multipart is not None:
        wire["files"] = _encoded("files", _inline_parts(options.multipart), options.files)
    size = len(dumps(wire))
    if size > OPTIONS_LIMIT:
        from ..errors import OptionError

        raise OptionError("options", "...", "", f"the options are {size} bytes as JSON (a "
                          "request body or -F file included): a distributed run sends them "
                          f"with every chunk, at most {OPTIONS_LIMIT} bytes; give large "
                          "bodies per item instead")
    return wire


def _inline_parts(parts: dict[str, tuple[str | None, Any, str | None]]) -> dict[str, Any]:
    """Multipart parts as ``multipart_parts`` gave them (files read on this machine), in
    the form it takes back: a plain field as its text, a file as ``{"content": ...}``
    with its ``filename`` and ``type``."""
    return {name: content if filename is None and kind is None else {
        "content": content, **({"filename": filename} if filename else {}),
        **({"type": kind} if kind else {})} for name, (filename, content, kind) in parts.items()}


def wire_item(item: Any) -> tuple[Any, int]:
    """``item`` as JSON carries it to a worker (files read here, inline), and its size as
    JSON; ValueError or OptionError when it cannot travel."""
    if isinstance(item, RequestSpec):
        item = {name: getattr(item, name) for name in sorted(SPEC_KEYS)
                if getattr(item, name) is not None}
    if isinstance(item, dict) and item.get("files") is not None:
        item = {**item, "files": _inline_parts(multipart_parts(item["files"], contained=True))}
    wire = _encoded("item", item, item)
    size = len(dumps({"i": wire}))
    if size > ITEM_LIMIT:
        raise ValueError(f"the item is {size} bytes as JSON: a distributed run sends items "
                         f"of at most {ITEM_LIMIT} bytes through the broker")
    return wire, size
