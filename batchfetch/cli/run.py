"""The command's consumer loop: rows from the public API to the output, the progress bar
and the summary, and the exit code (in the main greenlet, as every output is).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import click

from ..api import iter_fetch
from ..config import FetchOptions
from ..host_rules import MatchedPatterns
from ..results import FetchResult, SummaryCounter
from ..resume import RecordedRows
from ..writers import RowWriter
from .input_text import InputTextError
from .lines import NumberedItems
from .progress import Progress
from .streams import EXIT_INTERRUPTED, PipeText

__all__ = ["AppendedByTheLibrary", "EXIT_FAILED_ROWS", "EXIT_OK", "InInputOrder",
           "RowsToOutput"]

EXIT_OK, EXIT_FAILED_ROWS = 0, 1  # click exits 2 on usage errors; EXIT_INTERRUPTED is 130


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

    def __call__(self, items: NumberedItems,
                 on_row: Callable[[FetchResult], Any] | None = None) -> int:
        """Return the exit code: 0 when every row (kept ones too) is ok, 1 when any is not,
        130 on Ctrl-C or SIGTERM (after writing what completed). A closed output raises
        BrokenPipeError; another input's --resume file raises ResumeError; input that is
        not text raises InputTextError, after writing the rows of the lines before it.
        """
        tally, interrupted, started = SummaryCounter(), False, time.monotonic()
        matched = MatchedPatterns(self.options.hosts) if self.options.hosts else None
        bad_input: InputTextError | None = None
        # A file is read through once first (0.4 s per million lines): a line that is not
        # text, or another input's --resume file, stops the run before anything is fetched.
        total = items.scan()
        if self.recorded is not None and self.recorded.existed:
            self.say(self.recorded.describe())
        self.bar.start(total, initial=self.recorded.kept if self.recorded else 0)
        rows = self._rows(items)
        try:
            for row in rows:
                tally.add(row)  # before: a Ctrl-C while a pipe takes it leaves it to close()
                if matched is not None:
                    matched.add(row.url)
                self.writer.write(row)
                self.bar.update(tally)
                if on_row is not None:
                    on_row(row)
        except KeyboardInterrupt:
            interrupted = True
        except InputTextError as exc:
            bad_input = exc
        finally:
            rows.close()  # cancels whatever is still in flight
        self.bar.close()  # first: a table may go to the same terminal
        summary = tally.summary(time.monotonic() - started)
        if interrupted:
            note = (f"{summary}\ninterrupted: {tally.total} rows written, "
                    f"{items.pending} requests cancelled"
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
        self.writer.close()
        if bad_input is not None:
            self.say(str(summary))
            raise bad_input
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
        # indexed: rows (and saved bodies' names) keep the input's index when --resume skips
        rows = iter_fetch(items if recorded is None else recorded.unrecorded(items),
                          self.options, indexed=True)
        try:
            named = (items.annotate(row) for row in rows)
            yield from named if recorded is None else recorded.appending(named)
        finally:
            rows.close()
