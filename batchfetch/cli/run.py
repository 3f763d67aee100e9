"""The command's consumer loop: rows from the public API to the output, the progress bar
and the summary, and the exit code (in the main greenlet, as every output is).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import click
import gevent
import gevent.queue

from ..api import Fetcher
from ..config import FetchOptions
from ..errors import BrokerError
from ..host_rules import MatchedPatterns
from ..results import FetchResult, SummaryCounter
from ..resume import RecordedRows
from ..writers import RowWriter
from .input_text import InputTextError
from .lines import NumberedItems
from .progress import Progress
from .streams import EXIT_INTERRUPTED, PipeText

__all__ = ["AppendedByTheLibrary", "ChangedRowsOnly", "EXIT_FAILED_ROWS", "EXIT_OK",
           "InInputOrder", "RowsToOutput"]

EXIT_OK, EXIT_FAILED_ROWS = 0, 1  # click exits 2 on usage errors; EXIT_INTERRUPTED is 130
#: Seconds between redraws of the progress bar while no row completes, and while the output
#: waits for its reader: the counts and the time go on.
IDLE_REDRAW = 0.5


class InInputOrder(RowWriter):
    """Holds the rows until the end, then writes them in input order."""

    def __init__(self, writer: RowWriter) -> None:
        super().__init__(writer.stream, writer.include_body)
        self.writer, self.rows = writer, []

    def write(self, row: FetchResult) -> None:
        self.rows.append(row)

    def close(self) -> None:
        for row in sorted(self.rows, key=lambda row: row.index):
            self.writer.write(row)
        self.writer.close()


class ChangedRowsOnly(RowWriter):
    """--changed-only: the rows whose change is not ``same`` go on to ``writer``."""

    def __init__(self, writer: RowWriter) -> None:
        super().__init__(writer.stream, writer.include_body)
        self.writer = writer

    def write(self, row: FetchResult) -> None:
        if row.change != "same":
            self.writer.write(row)
            self.rows_written += 1

    def finish(self) -> None:
        self.writer.finish()

    def close(self) -> None:
        self.writer.close()


class AppendedByTheLibrary(RowWriter):
    """--resume: iter_fetch appends each row to -o FILE itself; nothing is left to write."""

    def __init__(self) -> None:
        super().__init__(stream=None)

    def write(self, row: FetchResult) -> None:
        pass

    def close(self) -> None:
        pass


class RowsToOutput:
    """The consumer loop: fetch items with the public API, write each row as it completes,
    draw the progress bar, summarise; called with the items (the demo calls it too)."""

    def __init__(self, options: FetchOptions, writer: RowWriter, say: Callable[[str], None],
                 bar: Progress, recorded: RecordedRows | None) -> None:
        self.options, self.writer, self.say, self.bar = options, writer, say, bar
        self.recorded = recorded
        self.resumable = False  # the output is a csv or jsonl file that --resume can finish
        self._fetcher: Fetcher | None = None  # the run's, while it runs

    def __call__(self, items: NumberedItems,
                 on_row: Callable[[FetchResult], Any] | None = None) -> int:
        """Return the exit code: 0 when every row (kept ones too) is ok, 1 when any is not,
        130 on Ctrl-C or SIGTERM (after writing what completed). A closed output raises
        BrokenPipeError; another input's --resume file raises ResumeError; input that is
        not text raises InputTextError, after writing the rows of the lines before it; a
        broker that went away raises BrokerError, after writing the rows that came before.
        """
        tally, interrupted, started = SummaryCounter(), False, time.monotonic()
        matched = MatchedPatterns(self.options.hosts) if self.options.hosts else None
        stopped: InputTextError | BrokerError | None = None
        # A file is read through once first (0.4 s per million lines): a line that is not
        # text, or another input's --resume file, stops the run before anything is fetched.
        total = items.scan()
        if self.recorded is not None and self.recorded.existed:
            self.say(self.recorded.describe())
        self.bar.start(total, initial=self.recorded.kept if self.recorded else 0)
        pump = _RowPump(self._rows(items))
        redraw = lambda: self.bar.update(tally, self.in_flight, row=False)  # noqa: E731
        if isinstance(self.writer.stream, PipeText):
            self.writer.stream.while_waiting = (IDLE_REDRAW, redraw)
        in_flight = pending = None
        try:
            while (row := pump.next(IDLE_REDRAW)) is not _END:
                if row is _IDLE:
                    redraw()
                    continue
                tally.add(row)  # before: a Ctrl-C while a pipe takes it leaves it to close()
                if matched is not None:
                    matched.add(row.url)
                self.writer.write(row)
                self.bar.update(tally, self.in_flight)
                if on_row is not None:
                    on_row(row)
        except KeyboardInterrupt:
            interrupted = True
            # Rows the pump took already are finished (with --resume, in the file already):
            # they are written and counted like the others, unless the output is a pipe
            # whose reader takes nothing now (the note must not wait behind them).
            stream = self.writer.stream
            if not (isinstance(stream, PipeText) and stream.lines_waiting()):
                for row in pump.drain():
                    tally.add(row)
                    self.writer.write(row)
            in_flight, pending = self.in_flight, items.pending
        except (InputTextError, BrokerError) as exc:  # the rows before it are written
            stopped = exc
        finally:
            pump.close()  # cancels whatever is still in flight
            if isinstance(self.writer.stream, PipeText):
                self.writer.stream.while_waiting = None
        self.bar.close()  # first: a table may go to the same terminal
        summary = tally.summary(time.monotonic() - started)
        if interrupted:
            written = f"{tally.total} rows" if not isinstance(self.writer, ChangedRowsOnly) \
                else f"{tally.total} rows finished, {self.writer.rows_written}"
            note = (f"{summary}\ninterrupted: {written} written, "
                    f"{_left(in_flight, pending, total, tally.total, self.recorded)}"
                    + ("; add --resume to fetch the rest" if self.resumable else ""))
            if isinstance(self.writer.stream, PipeText):
                # Its reader may be reading nothing (| less): say so before waiting for it,
                # which a second Ctrl-C cuts short.
                self.say(note)
                self.writer.stream.on_wait = lambda: click.echo(
                    "batchfetch: waiting for the reader to take the finished rows; Ctrl-C "
                    "again exits now", err=True)
                self.writer.close()
            else:
                self.writer.close()  # a table or JSON document of the finished rows
                self.say(note)
            return EXIT_INTERRUPTED
        if stopped is None:
            self.writer.finish()  # a run store records the run as finished
        self.writer.close()
        if stopped is not None:
            if tally.total or not isinstance(stopped, BrokerError):
                self.say(str(summary))
                if isinstance(stopped, BrokerError) and self.resumable:
                    self.say(f"batchfetch: {tally.total} rows written; add --resume to fetch "
                             "the rest once the broker is back")
            raise stopped
        self.say(str(summary))
        if not tally.total and not (self.recorded and self.recorded.kept):
            self.say("batchfetch: the input held no URLs (blank lines and lines starting "
                     "with # are skipped)")
        unmatched = matched.note() if matched is not None else ""
        if unmatched:
            self.say(unmatched)  # a pattern that matched nothing is likely a typo
        kept_failed = self.recorded.kept_failed if self.recorded else 0
        return EXIT_OK if tally.ok == tally.total and not kept_failed else EXIT_FAILED_ROWS

    def _rows(self, items: NumberedItems) -> Iterator[FetchResult]:
        """The rows of ``items``, each message naming its line; with --resume, the rows of
        the inputs without one, appended to the file as iter_fetch(resume=) does, but
        after the line is named (the library cannot know it)."""
        recorded = self.recorded
        fetcher = self._fetcher = Fetcher(self.options)
        try:
            # indexed: rows (and saved bodies' names) keep the input's index when --resume
            # skips some
            rows = fetcher.iter_fetch(items if recorded is None else recorded.unrecorded(items),
                                      indexed=True)
            try:
                named = (items.annotate(row) for row in rows)
                yield from named if recorded is None else recorded.appending(named)
            finally:
                rows.close()
        finally:
            fetcher.close()

    @property
    def in_flight(self) -> int | None:
        """Requests in flight now, if the run's engine can tell (None: it cannot)."""
        return self._fetcher.in_flight if self._fetcher is not None else None


#: What :meth:`_RowPump.next` gives when no row came in time, and after the last row.
_IDLE, _END = object(), object()


class _RowPump:
    """Pulls ``rows`` in a greenlet of its own, so that the consumer loop can wait for the
    next row with a timeout (and redraw the bar meanwhile). It only pulls: everything that
    writes to the terminal or the output stays in the consumer loop.

    Example::

        >>> pump = _RowPump(iter([1, 2]))
        >>> [pump.next(0.5), pump.next(0.5), pump.next(0.5) is _END]
        [1, 2, True]
        >>> pump.close()
    """

    def __init__(self, rows: Iterator[Any]) -> None:
        self._rows = rows
        self._queue: gevent.queue.Queue = gevent.queue.Queue(maxsize=1)  # one row ahead
        self._stopping = self._putting = False
        self._greenlet = gevent.spawn(self._pull)

    def _pull(self) -> None:
        try:
            for row in self._rows:
                self._putting = True
                self._queue.put((True, row))
                self._putting = False
                if self._stopping:
                    return
            self._queue.put((True, _END))
        except gevent.GreenletExit:
            raise
        except BaseException as exc:  # noqa: BLE001 - raised again in the consumer loop
            self._queue.put((False, exc))

    def next(self, timeout: float) -> Any:
        """The next row, :data:`_END` after the last, or :data:`_IDLE` after ``timeout``
        seconds without one; what the rows raised is raised here."""
        try:
            fine, value = self._queue.get(timeout=timeout)
        except gevent.queue.Empty:
            return _IDLE
        if not fine:
            raise value
        return value

    def drain(self) -> list[Any]:
        """Stop pulling, and return the rows pulled already: the one waiting in the queue,
        and the one a put was waiting to hand over."""
        self._stopping = True
        rows = []
        while True:
            try:
                fine, value = self._queue.get_nowait()
            except gevent.queue.Empty:
                if self._greenlet.dead or not self._putting:
                    return rows
                gevent.sleep(0)  # the waiting put hands its row over
                continue
            if fine and value is not _END:
                rows.append(value)

    def close(self) -> None:
        """Stop pulling: the rows' generator is closed, which cancels what is in flight."""
        self._greenlet.kill(block=True)
        close = getattr(self._rows, "close", None)
        if close is not None:
            close()


def _left(in_flight: int | None, pending: int | None, total: int | None, written: int,
          recorded: RecordedRows | None) -> str:
    """What an interrupted run left, in the words of the Ctrl-C note: the requests in flight
    (cancelled) and the inputs not started.

    Example::

        >>> _left(2, 256, 1000, 6, None)
        '2 requests in flight cancelled, 992 inputs not started'
        >>> _left(None, 40, None, 6, None)
        '40 inputs read and not finished (in flight or waiting), and the rest of the input'
    """
    pending = pending or 0
    if in_flight is None:
        said = f"{pending} inputs read and not finished (in flight or waiting)"
    else:
        said = f"{in_flight} requests in flight cancelled"
    if total is None:
        return said + (", and the rest of the input" if in_flight is None
                       else f", {pending - in_flight} read ahead and the rest of the input "
                            "not started")
    kept = recorded.kept if recorded is not None else 0
    not_started = total - kept - written - (in_flight or 0)
    if in_flight is None:
        not_started = total - kept - written - pending
        return said + (f", {not_started} inputs not read" if not_started else "")
    return said + f", {not_started} inputs not started"
