"""The engine seam: what every way of running a batch (in this process, in worker
processes, and later distributed) gives the one run loop above it (``_runloop.py``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Protocol

from ..results import FetchResult

__all__ = ["Engine", "ExceptionHandler", "OnResult", "RowEvent", "UNKNOWN_ITEM"]

#: ``on_result(row)``: called for every row, in the caller's greenlet, before it is yielded.
OnResult = Callable[[FetchResult], Any]
#: ``exception_handler(item, exception)``: called once per failed row, after ``on_result``.
ExceptionHandler = Callable[[Any, BaseException], Any]


#: A RowEvent's ``item`` when the engine cannot hand it back (rows shipped as JSON).
UNKNOWN_ITEM: Any = object()


class RowEvent(NamedTuple):
    """One finished row, the exception that explains it (None for an ok row), and the input
    item it answers (the very object pulled, so inputs that repeat an index are told apart).

    A NamedTuple, not a frozen dataclass: one is made per row, and building a tuple
    costs a fraction of a frozen dataclass's ``__init__``. An engine that cannot ship
    the exception (rows sent as JSON) leaves it None; the run loop rebuilds one from
    the row's kind and message.
    """

    row: FetchResult           # row.index is the caller's input index
    exception: BaseException | None
    item: Any = UNKNOWN_ITEM


class Engine(Protocol):
    """A way of running a batch, built for one :class:`~batchfetch.FetchOptions`.

    An engine's options are fixed when it is built: the session, its pools and the
    limits derive from them, so a run with other options takes another engine. An
    engine runs one batch at a time and may run many, one after another (the local
    engine keeps its session and connections between them).
    """

    def run(self, pairs: Iterator[tuple[int, Any]]) -> Iterator[RowEvent]:
        """Pull ``pairs`` lazily and yield one RowEvent per pair, in completion order.

        Closing the returned iterator cancels what is in flight. A pair whose row never
        comes back gets a ``lost`` row from the run loop; a second row for an index is
        dropped there.
        """
        ...

    def close(self) -> None:
        """Release what the engine holds (sessions, processes); idempotent."""
        ...
