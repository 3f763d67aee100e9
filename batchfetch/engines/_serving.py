"""A share of a sharded batch, answered by one LocalEngine: the items handed out by
serial (the order the parent pulled them), each row reported under its item's serial.

Used by each worker process (``_process_child``) and by the parent's own share
(``processes``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .local import LocalEngine

__all__ = ["serve_share"]


def serve_share(engine: LocalEngine, next_item: Callable[[], tuple | None],
                report: Callable[[int, Any, BaseException | None], None]) -> None:
    """Fetch every ``("item", serial, index, item)`` that ``next_item()`` gives, until it
    gives None, and ``report(serial, row, exception)`` each row as it comes.

    Rows carry the parent's input indexes (saved bodies are named by them); the serial
    tells apart inputs that repeat an index.
    """
    # id(item) -> the serials of the inputs it answers, while it is fetched (a list:
    # equal short strings can be one object).
    serials: dict[int, list[int]] = {}

    def pairs() -> Iterator[tuple[int, Any]]:
        while True:
            message = next_item()
            if message is None:
                return
            _, serial, index, item = message
            serials.setdefault(id(item), []).append(serial)
            yield index, item

    for row, exception, item in engine.run(pairs()):
        waiting = serials[id(item)]
        serial = waiting.pop(0)
        if not waiting:
            del serials[id(item)]
        report(serial, row, exception)
