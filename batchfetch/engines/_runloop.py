"""The one loop above every engine: exactly one row per input index, hooks run in the
caller's greenlet before each row is yielded, and a ``lost`` row for every input the
engine never answered.
"""
from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ErrorKind, HTTPStatusError, RowError
from ..inputs import error_row
from ..results import FetchResult
from .base import UNKNOWN_ITEM, Engine, ExceptionHandler, OnResult

if TYPE_CHECKING:
    from ..changes import Changes

__all__ = ["run_rows"]

log = logging.getLogger("batchfetch")

LOST_MESSAGE = "the engine ended without a row for this input"


class _Owed:
    """The inputs an engine has pulled and not answered yet: index -> what the run loop
    keeps of each (the item, or with ``since`` the Changes' record of it, whose ``sent``
    is the item the engine was given).

    An input may repeat an index (``indexed=True`` is the caller's numbering); each
    pull of it is owed a row, so repeats wait in a list behind the first.
    """

    def __init__(self, sent_of: Callable[[Any], Any] | None = None) -> None:
        self.items: dict[int, Any] = {}
        self.repeats: dict[int, list[Any]] = {}
        self._sent_of = sent_of or (lambda kept: kept)

    def pulled(self, pairs: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
        """``pairs`` (index, what is kept), noting each as the engine pulls it (in the
        engine's feeder), with the item the engine is given."""
        sent_of = self._sent_of
        for index, kept in pairs:
            if index in self.items:
                self.repeats.setdefault(index, []).append(kept)
            else:
                self.items[index] = kept
            yield index, sent_of(kept)

    def answer(self, index: int, item: Any = UNKNOWN_ITEM) -> tuple[bool, Any]:
        """Whether ``index`` was owed a row (and what is kept of it); a second row is not.

        ``item``, when the engine knows it, says which of an index's repeats this is.
        """
        if index not in self.items:
            return False, None
        repeats = self.repeats.get(index)
        sent_of = self._sent_of
        if repeats and item is not UNKNOWN_ITEM and sent_of(self.items[index]) is not item:
            for position, owed in enumerate(repeats):
                if sent_of(owed) is item:
                    del repeats[position]
                    if not repeats:
                        del self.repeats[index]
                    return True, owed
        first = self.items.pop(index)
        if repeats:
            self.items[index] = repeats.pop(0)
            if not repeats:
                del self.repeats[index]
        return True, first

    def left(self) -> list[tuple[int, Any]]:
        """Every pair still owed, in index order."""
        owed = list(self.items.items())
        owed += [(index, item) for index, items in self.repeats.items() for item in items]
        return sorted(owed, key=lambda pair: pair[0])


def run_rows(engine: Engine, pairs: Iterator[tuple[int, Any]], default_method: str,
             on_result: OnResult | None = None,
             exception_handler: ExceptionHandler | None = None,
             changes: Changes | None = None) -> Iterator[FetchResult]:
    """Yield one row per pair of ``pairs``, fetched by ``engine``, as each completes.

    ``on_result(row)`` and then (for a failed row) ``exception_handler(item, exc)`` run
    here, in the caller's greenlet, before the row is yielded. With ``changes`` (the
    run's ``since``), inputs go out with the previous run's validators and each row gets
    its ``change`` before the hooks see it. Closing this iterator closes the engine's
    run, which cancels what is in flight.
    """
    hooked = on_result is not None or exception_handler is not None
    if changes is None:
        owed = _Owed()
        events = engine.run(owed.pulled(pairs))
    else:
        owed = _Owed(sent_of=operator.attrgetter("sent"))
        events = engine.run(owed.pulled(changes.sending(pairs)))
    finished = False
    try:
        for row, exception, pulled in events:
            wanted, item = owed.answer(row.index, pulled)
            if not wanted:
                log.debug("dropped a second row for input %d", row.index)
                continue
            if changes is not None:
                row, item = changes.mark(row, item)
            if hooked:
                _run_hooks(row, item, exception, on_result, exception_handler)
            yield row
        finished = True
    finally:
        events.close()
        if changes is not None and not finished:  # stopped: these rows will not come
            changes.forget(owed.left())
    for index, kept in owed.left():
        item = kept if changes is None else kept.item
        row = error_row(index, item, default_method, ErrorKind.LOST, LOST_MESSAGE)
        if changes is not None:
            row, item = changes.mark(row, kept)
        _run_hooks(row, item, None, on_result, exception_handler)
        yield row


def _run_hooks(row: FetchResult, item: Any, exception: BaseException | None,
               on_result: OnResult | None, exception_handler: ExceptionHandler | None) -> None:
    if on_result is not None:
        on_result(row)
    if exception_handler is not None and not row.ok:
        exception_handler(item, exception or exception_for(row))


def exception_for(row: FetchResult) -> BaseException:
    """The exception a failed row stands for, when none came with it."""
    if row.error == ErrorKind.HTTP:
        return HTTPStatusError(row.url, row.status, row.message)
    return RowError(row.error or ErrorKind.HTTP, row.url, row.message)
