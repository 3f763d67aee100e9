"""Resuming a run into the csv or jsonl file an earlier run wrote: which inputs already have
rows (read back by the format's reader and :meth:`FetchResult.from_record`), whether they
are the same inputs, and appending the rest without touching the file until the input is
known to match.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from array import array
from collections.abc import Iterable, Iterator
from typing import IO, Any

from .errors import BatchFetchError, OutputError
from .inputs import describe_item
from .redaction import mask_line, mask_url
from .results import ADDED_COLUMNS, COLUMNS, FetchResult, record_columns
from .writers import OUTPUT_FORMATS, RowWriter, format_for_path, output_format, writer_for

__all__ = ["RESUMABLE_FORMATS", "RecordedRows", "ResumeError", "recorded_urls"]

RESUMABLE_FORMATS = tuple(name for name, spec in OUTPUT_FORMATS.items() if spec.resumable)
_NONE, _OK, _FAILED = 0, 1, 2
#: Input indices a file may skip past its row count (interrupted rows leave such holes);
#: a larger index means the file was not written by batchfetch.
_MAX_GAP = 1 << 24


class ResumeError(BatchFetchError, ValueError):
    """The output file cannot be resumed: not rows batchfetch wrote, or another input's."""


def recorded_urls(item: Any) -> tuple[str, ...]:
    """What the url column of ``item``'s row may hold: its URL as given (an unusable item's
    row shows it so: for a text line, the line), or stripped (as a valid URL is sent); with
    any password masked, as rows show it.

    Example::

        >>> recorded_urls({"url": " http://me:pw@127.0.0.1/a "})
        (' http://me:***@127.0.0.1/a ', 'http://me:***@127.0.0.1/a')
    """
    url = describe_item(item)
    return mask_line(url), mask_url(url.strip())


class RecordedRows:
    """The rows an earlier run wrote to ``path``, read once: per input index, whether it
    has a row (ok or failed) and a hash of its url, in 9 bytes. A missing file has none,
    and is started when rows are appended.

    ``fmt`` is the file's format (csv or jsonl; by default, the one its suffix names).
    ``include_body`` says whether the rows have the body columns; ``retry_failed``,
    whether the inputs of failed rows are fetched again (their rows then leave the file).

    Raises :class:`ResumeError` when a complete line is not a row (or a CSV header differs
    from the columns), or ``path`` is not a regular file; ``ValueError`` for a format
    that cannot be resumed. A partial last line is noted and dropped when rows are appended.

    Example::

        >>> with open("rows.jsonl", "w") as written:
        ...     _ = written.write('{"index": 0, "url": "http://127.0.0.1/a", "ok": true}\\n'
        ...                       '{"index": 1, "url": "http://127.0.0.1/b", "ok": false}\\n'
        ...                       '{"index": 2, "url": "http://127.0')   # cut by kill -9
        >>> rows = RecordedRows("rows.jsonl", "jsonl")
        >>> rows.count, rows.failed, rows.partial
        (2, 1, True)
    """

    def __init__(self, path: str | os.PathLike[str], fmt: str | None = None,
                 include_body: bool = False, retry_failed: bool = False,
                 **shape: Any) -> None:
        self.path = os.fspath(path)
        self.format = format_for_path(self.path) if fmt is None else output_format(fmt)
        if not self.format.resumable:
            raise ValueError(f"cannot resume a {self.format.name} file; expected "
                             f"{' or '.join(RESUMABLE_FORMATS)}")
        self.reader = self.format.reader
        self.include_body, self.retry_failed = include_body, retry_failed
        #: The response headers' columns rows appended get (FetchOptions.record_shape).
        self.shape = shape
        self.columns = record_columns(include_body, **shape)
        self.count = self.failed = 0
        self.last_index = -1
        self.header = False  # a CSV header line is there
        self._state = bytearray()
        self._url_hash = array("q")
        self._end = 0  # the end of the last complete record
        self._appended = False
        #: The file was there to read (a missing one is started by the rows appended).
        self.existed = os.path.exists(self.path)
        if self.existed and not os.path.isfile(self.path):  # /dev/full reads as endless zeros
            raise ResumeError(f"{self.path} is not a regular file: it holds no rows to resume")
        if self.existed:
            for number, end, raw in self._records():
                self._end = end
                if self.reader.header and number == 1:
                    self._read_header(raw)
                elif raw.strip():
                    self._add(number, self._row(number, raw))
        self.partial = self.existed and os.path.getsize(self.path) > self._end

    def describe(self) -> str:
        """What resuming keeps, for the user: counts, failed rows, a dropped cut line."""
        note = f"resume: {self.count} rows already in {self.path}"
        if self.failed:
            note += (f", {self.failed} failed (fetched again)" if self.retry_failed else
                     f", {self.failed} failed (kept; --retry-failed fetches them again)")
        if self.partial:
            note += "; its cut last line is dropped"
        return note + "; fetching the inputs without a row"

    @property
    def kept(self) -> int:
        """Inputs whose rows stay (and are skipped): all, or the ok ones with retry_failed."""
        return self.count - self.failed if self.retry_failed else self.count

    @property
    def kept_failed(self) -> int:
        """Failed rows that stay in the file."""
        return 0 if self.retry_failed else self.failed

    # -- reading the file ------------------------------------------------------------------

    def _records(self) -> Iterator[tuple[int, int, bytes]]:
        with open(self.path, "rb") as stream:
            yield from self.reader.records(stream)

    def _read_header(self, raw: bytes) -> None:
        try:
            header = self.reader.columns(raw)
        except ValueError as exc:
            raise ResumeError(f"line 1 of {self.path} is not a header: {exc}") from None
        self._check_keys(header)
        self.header = True

    def _check_keys(self, header: tuple[str, ...]) -> None:
        """The columns of the file (a CSV header, the first JSON Lines row's keys) must be
        this run's, or an older file's of the same options."""
        if header in self._older_columns():
            self.columns = header  # its rows, and the rows added to it, lack the new ones
        elif header != self.columns:
            raise ResumeError(
                f"{self.path} has the columns {', '.join(header)}; this run writes "
                f"{', '.join(self.columns)} (use the same --body, -i and --header-column as "
                f"the run that wrote it)")

    def _check_optional_keys(self, record: dict[str, Any]) -> None:
        """A JSON Lines file's first row must have the columns beyond COLUMNS (the body's,
        the headers') that this run writes, and no others: the standard ones may be
        missing (a row needs only index, url and ok)."""
        found = sorted(key for key in record if key not in COLUMNS)
        wanted = sorted(self.columns[len(COLUMNS):])
        if found != wanted:
            raise ResumeError(
                f"{self.path} has rows with {', '.join(found) or 'no columns'} beyond the "
                f"standard ones; this run writes {', '.join(wanted) or 'none'} (use the same "
                f"--body, -i and --header-column as the run that wrote it)")

    def _older_columns(self) -> list[tuple[str, ...]]:
        """The columns of files written before the latest columns were added: without
        each tail of ADDED_COLUMNS."""
        body = self.columns[len(COLUMNS):]
        return [tuple(name for name in COLUMNS if name not in ADDED_COLUMNS[count:]) + body
                for count in range(len(ADDED_COLUMNS))]

    def _row(self, number: int, raw: bytes) -> FetchResult:
        try:
            record = self.reader.record(raw, self.columns)
            if not self.reader.header and not self.count:
                self._check_optional_keys(record)  # a JSON Lines file has no header line
            row = FetchResult.from_record(record, self.shape.get("header_columns", ()))
            if row.index < 0:
                raise ValueError(f"index {row.index} is negative")
        except ResumeError:
            raise
        except ValueError as exc:
            raise ResumeError(f"line {number} of {self.path} is not a row: {exc}") from None
        return row

    def _add(self, number: int, row: FetchResult) -> None:
        index = row.index
        if index > self.count + _MAX_GAP:
            raise ResumeError(f"line {number} of {self.path} has index {index}, far past its "
                              f"{self.count} rows: not rows batchfetch wrote")
        if index >= len(self._state):
            grow = index + 1 - len(self._state)
            self._state.extend(bytes(grow))
            self._url_hash.extend([0] * grow)
        elif self._state[index]:  # a second row for the same input: the ok one counts
            if row.ok and self._state[index] == _FAILED:
                self._state[index] = _OK
                self.failed -= 1
            return
        self._state[index] = _OK if row.ok else _FAILED
        self._url_hash[index] = hash(row.url)
        self.count += 1
        self.failed += not row.ok
        self.last_index = max(self.last_index, index)

    def _lines(self) -> Iterator[tuple[bytes, FetchResult | None]]:
        """Each complete record read when the file was opened, with its row (None for the
        header and blank lines)."""
        if not self.existed:
            return
        for number, end, raw in self._records():
            if end > self._end:
                return
            is_row = raw.strip() and not (self.header and number == 1)
            yield raw, (self._row(number, raw) if is_row else None)

    def kept_rows(self) -> Iterator[FetchResult]:
        """The rows that stay in the file, read back from it, one per input: all, or the
        ok ones with retry_failed. Read them before rows are appended."""
        taken = bytearray(len(self._state))
        for _, row in self._lines():
            if row is None or taken[row.index]:
                continue
            state = self._state[row.index]
            if (state == _OK) == row.ok and (state == _OK or not self.retry_failed):
                taken[row.index] = 1
                yield row

    # -- checking the input ------------------------------------------------------------------

    def skips(self, index: int, item: Any, where: str = "") -> bool:
        """Whether input ``index`` (``item``, read at ``where``) keeps its row and is skipped.

        Raises :class:`ResumeError` when the row recorded for ``index`` has another URL:
        the file was written for a different input.
        """
        state = self._state[index] if index < len(self._state) else _NONE
        if state == _NONE:
            return False
        urls = recorded_urls(item)
        if self._url_hash[index] not in map(hash, urls):
            shown = f"input {index} ({where})" if where else f"input {index}"
            raise ResumeError(
                f"{self.path} was written for another input: its row for input {index} has "
                f"the url {self._url_of(index)!r}, but {shown} is {urls[0]!r}. "
                f"Give the same input, or drop --resume to start the file afresh")
        return state == _OK or not self.retry_failed

    def check_count(self, count: int, name: str = "the input") -> None:
        """Raise :class:`ResumeError` if the file has rows past the input's ``count`` items."""
        if self.last_index >= count:
            raise ResumeError(
                f"{self.path} was written for another input: it has a row for input "
                f"{self.last_index}, but {name} has only {count} inputs. Give the same input, "
                f"or drop --resume to start the file afresh")

    def unrecorded(self, pairs: Iterable[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
        """The ``(index, item)`` pairs to fetch: those whose input has no row to keep.

        Each recorded row is checked against its input on the way (:meth:`skips`), and an
        input to fetch that comes before the last recorded index is held back until every
        recorded row has been checked: another input's file raises :class:`ResumeError`
        before anything is fetched. So does an input with fewer items than the file has rows.
        """
        held: list[tuple[int, Any]] = []
        count = 0
        for index, item in pairs:
            count = max(count, index + 1)
            if self.skips(index, item):
                continue
            if index < self.last_index:
                held.append((index, item))
                continue
            yield from held
            held = []
            yield index, item
        self.check_count(count)
        yield from held

    def _url_of(self, index: int) -> str:
        for _, row in self._lines():
            if row is not None and row.index == index:
                return row.url
        return "?"

    # -- appending ---------------------------------------------------------------------------

    def appending(self, rows: Iterator[FetchResult]) -> Iterator[FetchResult]:
        """``rows``, each appended to the file (and flushed) before it is yielded.

        The file is not touched until the first row, or until ``rows`` end or are closed:
        then a cut last line is dropped, or with retry_failed the file is rewritten
        atomically without its failed rows; a missing file is started (a CSV gets its
        header). When ``rows`` raise an exception, what was not written yet is dropped
        and the file is left as it is. A write that fails raises
        :class:`~batchfetch.errors.OutputError`.
        """
        if self._appended:
            raise ValueError(f"rows were appended to {self.path} already: read it again "
                             f"for another run")
        self._appended = True
        stream = _AppendingOutput(self)
        writer = writer_for(self.format.name, stream, self.include_body, self.columns,
                            **self.shape)
        return self._append(rows, writer, stream)

    def _append(self, rows: Iterator[FetchResult], writer: RowWriter,
                stream: _AppendingOutput) -> Iterator[FetchResult]:
        keep = True
        try:
            for row in rows:
                writer.write(row)
                yield row
        except Exception:
            keep = False  # another input's file, input that is not text: left as it was
            raise
        finally:
            rows.close()  # first: it cancels what is in flight
            if keep:  # done, or stopped early (closed, interrupted): the rows written stay
                writer.close()
                stream.close()
            else:
                stream.discard()

    def _open(self) -> IO[str]:
        """Drop a partial last line (or, with retry_failed, rewrite the file atomically
        without the failed rows), then open it for appending."""
        if self.retry_failed and self.failed:
            self._rewrite_without_failed()
        elif self.partial:
            os.truncate(self.path, self._end)
        return open(self.path, "a", encoding="utf-8", newline="")

    def _rewrite_without_failed(self) -> None:
        directory, name = os.path.split(os.path.abspath(self.path))
        fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as copy:
                for raw, row in self._lines():
                    if (row is None and raw.strip()) or (row is not None and row.ok):
                        copy.write(raw)  # the header, and the ok rows
                copy.flush()
                os.fsync(copy.fileno())
            shutil.copymode(self.path, temporary)
            os.replace(temporary, self.path)
        except BaseException:
            os.unlink(temporary)
            raise


class _AppendingOutput:
    """The text stream a writer appends to: nothing touches the file until the first
    flush (the first row), so a mismatched input leaves it as it was; a CSV header is
    dropped when the file has one. OS errors become :class:`OutputError`.
    """

    def __init__(self, rows: RecordedRows) -> None:
        self._rows = rows
        self._held: list[str] = []
        self._file: IO[str] | None = None

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise OutputError(self._rows.path, exc) from exc

    def write(self, text: str) -> int:
        if self._file is None:
            self._held.append(text)
        else:
            with self._guard():
                self._file.write(text)
        return len(text)

    def flush(self) -> None:
        with self._guard():
            if self._file is None:
                self._file = self._rows._open()
                text = "".join(self._held)
                if self._rows.header:  # the writer's header is the first line it wrote
                    text = text.partition("\n")[2]
                self._file.write(text)
            self._file.flush()

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        if self._file is not None:
            with self._guard():
                self._file.close()

    def discard(self) -> None:
        """Close without writing what is buffered (an error stopped the run)."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
