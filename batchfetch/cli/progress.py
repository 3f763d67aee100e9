"""The progress bar of a command-line run, on stderr: done/total, rate, ok, failed and
retries, ETA; and a log handler that writes its lines above the bar instead of through it.

Drawn only from the consumer loop (the main greenlet): once per row, and every half second
while no row completes or the output waits for its reader; tqdm's own monitor thread is
off, so nothing else ever writes it.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import IO, Any

from ..results import SummaryCounter

__all__ = ["Progress"]

#: The bar's size when the stream cannot tell (a pipe, or a pty that says 0 x 0, for
#: which tqdm would draw nothing).
_WIDTH, _HEIGHT = 100, 24


def _bar_class() -> type:
    from tqdm import tqdm  # here: a run without a bar does not import tqdm

    class Bar(tqdm):
        monitor_interval = 0  # no refresher thread: only the consumer loop draws the bar

    # A thread lock rather than tqdm's default, which adds a multiprocessing lock
    # (a semaphore, and on some start methods a resource-tracker process).
    Bar.set_lock(threading.RLock())
    return Bar


class Progress:
    """A progress bar on ``stream`` when ``enabled``; every method is a no-op otherwise.

    Example::

        >>> import io
        >>> from batchfetch.results import FetchResult
        >>> stream, tally = io.StringIO(), SummaryCounter()
        >>> progress = Progress(enabled=True, stream=stream)
        >>> progress.start(total=40, initial=0)
        >>> tally.add(FetchResult(0, "http://127.0.0.1/", ok=True, status=200, attempts=1))
        >>> progress.update(tally)   # after each row: the SummaryCounter of the run
        >>> progress.close()
        >>> print(stream.getvalue().split("\\r")[-1])   # the bar as close() left it
          2%|...| 1/40 [...ok 1, failed 0, retries 0]
    """

    def __init__(self, enabled: bool, stream: IO[str]) -> None:
        self.enabled = enabled
        self.stream = stream
        self._bar: Any = None

    def start(self, total: int | None, initial: int = 0) -> None:
        """Show the bar: ``initial`` of ``total`` inputs done (None: unknown total)."""
        if self.enabled and self._bar is None:
            sized = _has_width(self.stream)
            self._bar = _bar_class()(total=total, initial=initial, file=self.stream,
                                     unit="req", dynamic_ncols=sized,
                                     ncols=None if sized else _WIDTH,
                                     nrows=None if sized else _HEIGHT, mininterval=0.1,
                                     smoothing=0.1, postfix="ok 0, failed 0, retries 0")

    def update(self, tally: SummaryCounter, in_flight: int | None = None,
               row: bool = True) -> None:
        """One more row (``row``), or none (a redraw while rows are slow to come: the time,
        the rate and ``in_flight`` go on); the counts come from ``tally``, which has
        counted the rows, and ``in_flight`` from the engine (None: not shown)."""
        if self._bar is not None:
            counts = f"ok {tally.ok}, failed {tally.total - tally.ok}, retries {tally.retries}"
            if in_flight is not None:
                counts += f", in flight {in_flight}"
            self._bar.set_postfix_str(counts, refresh=False)
            if row:
                self._bar.update(1)
            else:
                self._bar.refresh()

    def close(self) -> None:
        """Draw the bar a last time and leave it on screen, above the summary."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def log_handler(self) -> logging.Handler:
        """A handler writing to ``stream`` that lifts the bar out of the way of each line."""
        return _AboveTheBar(self)


def _has_width(stream: IO[str]) -> bool:
    """Whether ``stream`` is a terminal that knows its size."""
    try:
        return os.get_terminal_size(stream.fileno()).columns > 0
    except (AttributeError, OSError, ValueError):
        return False


class _AboveTheBar(logging.StreamHandler):
    def __init__(self, progress: Progress) -> None:
        super().__init__(progress.stream)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        bar = self.progress._bar
        if bar is None:
            super().emit(record)
            return
        bar.clear()
        super().emit(record)
        bar.refresh()
