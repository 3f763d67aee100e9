"""Resuming a run into the csv or jsonl file an earlier run wrote: which inputs already have
rows, whether they are the same inputs, and appending the rest without touching the file
until the input is known to match.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from array import array
from collections.abc import Iterator
from typing import Any

from .errors import BatchFetchError
from .inputs import describe_item
from .redaction import mask_line, mask_url
from .results import ADDED_COLUMNS, COLUMNS, record_columns
from .writers import OUTPUT_FORMATS, restore_cell

__all__ = ["RESUMABLE_FORMATS", "AppendingOutput", "RecordedRows", "ResumeError",
           "recorded_urls"]

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


def _records(path: str, fmt: str) -> Iterator[tuple[int, int, int, bytes]]:
    """``(line number, start, end, raw bytes)`` of each complete record, the header included.

    A record is complete when it ends with a newline, and, in CSV, has an even number of
    quotes (a newline inside a quoted field leaves the count odd). What follows the last
    complete record (a row cut by kill -9) is not yielded.
    """
    with open(path, "rb") as stream:
        start = position = 0
        number, first_line, pending, quotes = 0, 1, b"", 0
        for raw in stream:
            number += 1
            position += len(raw)
            pending += raw
            if fmt == "csv":
                quotes += raw.count(b'"')
            if not raw.endswith(b"\n") or quotes % 2:
                continue
            yield first_line, start, position, pending
            start, first_line, pending, quotes = position, number + 1, b"", 0


class RecordedRows:
    """The rows an earlier run wrote to ``path``, read once: per input index, whether it
    has a row (ok or failed) and a hash of its url, in 9 bytes.

    Raises :class:`ResumeError` when a complete line is not a row (or a CSV header differs
    from ``columns``). A partial last line is noted and dropped when the file is opened.

    Example::

        >>> rows = RecordedRows("rows.jsonl", "jsonl")
        >>> rows.count, rows.failed, rows.partial
        (25, 2, False)
    """

    def __init__(self, path: str, fmt: str, include_body: bool = False,
                 retry_failed: bool = False) -> None:
        if fmt not in RESUMABLE_FORMATS:
            raise ValueError(f"cannot resume a {fmt} file; expected "
                             f"{' or '.join(RESUMABLE_FORMATS)}")
        self.path, self.format, self.retry_failed = path, fmt, retry_failed
        self.columns = record_columns(include_body)
        self.count = self.failed = 0
        self.last_index = -1
        self.header = False  # a CSV header line is there
        self._state = bytearray()
        self._url_hash = array("q")
        self._end = 0  # the end of the last complete record
        for number, _, end, raw in _records(path, fmt):
            self._end = end
            self._read(number, raw)
        self.partial = os.path.getsize(path) > self._end

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

    def _read(self, number: int, raw: bytes) -> None:
        if self.format == "csv" and number == 1:
            header = tuple(next(csv.reader(io.StringIO(raw.decode("utf-8"), newline=""))))
            if header in self._older_columns():
                self.columns = header  # its rows, and the rows added to it, lack the new ones
            elif header != self.columns:
                raise ResumeError(
                    f"{self.path} has the columns {', '.join(header)}; this run writes "
                    f"{', '.join(self.columns)} (use the same --body as the run that wrote it)")
            self.header = True
            return
        if not raw.strip():
            return
        index, url, ok = self._parse(number, raw)
        if index > self.count + _MAX_GAP:
            raise ResumeError(f"line {number} of {self.path} has index {index}, far past its "
                              f"{self.count} rows: not rows batchfetch wrote")
        if index >= len(self._state):
            grow = index + 1 - len(self._state)
            self._state.extend(bytes(grow))
            self._url_hash.extend([0] * grow)
        elif self._state[index]:  # a second row for the same input: the ok one counts
            if ok and self._state[index] == _FAILED:
                self._state[index] = _OK
                self.failed -= 1
            return
        self._state[index] = _OK if ok else _FAILED
        self._url_hash[index] = hash(url)
        self.count += 1
        self.failed += not ok
        self.last_index = max(self.last_index, index)

    def _older_columns(self) -> list[tuple[str, ...]]:
        """The columns of files written before the latest columns were added."""
        body = self.columns[len(COLUMNS):]
        return [tuple(name for name in COLUMNS if name not in ADDED_COLUMNS) + body]

    def _parse(self, number: int, raw: bytes) -> tuple[int, str, bool]:
        try:
            text = raw.decode("utf-8")
            if self.format == "jsonl":
                record = json.loads(text)
            else:
                cells = [restore_cell(cell)
                         for cell in next(csv.reader(io.StringIO(text, newline="")))]
                if len(cells) != len(self.columns):
                    raise ValueError(f"{len(cells)} cells, expected {len(self.columns)}")
                record = dict(zip(self.columns, cells))
                record["index"] = int(record["index"])
                record["ok"] = {"true": True, "false": False}[record["ok"]]
            index, url, ok = record["index"], record["url"], record["ok"]
            if not (isinstance(index, int) and index >= 0 and isinstance(url, str)
                    and isinstance(ok, bool)):
                raise ValueError("index, url or ok has the wrong type")
        except (ValueError, KeyError, TypeError, StopIteration) as exc:
            raise ResumeError(f"line {number} of {self.path} is not a row: {exc}") from None
        return index, url, ok

    def skips(self, index: int, item: Any, where: str) -> bool:
        """Whether input ``index`` (``item``, read at ``where``) keeps its row and is skipped.

        Raises :class:`ResumeError` when the row recorded for ``index`` has another URL:
        the file was written for a different input.
        """
        state = self._state[index] if index < len(self._state) else _NONE
        if state == _NONE:
            return False
        urls = recorded_urls(item)
        if self._url_hash[index] not in map(hash, urls):
            raise ResumeError(
                f"{self.path} was written for another input: its row for input {index} has "
                f"the url {self._url_of(index)!r}, but input {index} ({where}) is {urls[0]!r}. "
                f"Give the same input, or drop --resume to start the file afresh")
        return state == _OK or not self.retry_failed

    def check_count(self, count: int, name: str) -> None:
        """Raise :class:`ResumeError` if the file has rows past the input's ``count`` items."""
        if self.last_index >= count:
            raise ResumeError(
                f"{self.path} was written for another input: it has a row for input "
                f"{self.last_index}, but {name} has only {count} inputs. Give the same input, "
                f"or drop --resume to start the file afresh")

    def _url_of(self, index: int) -> str:
        for number, _, _, raw in _records(self.path, self.format):
            if not (self.format == "csv" and number == 1) and raw.strip():
                found, url, _ = self._parse(number, raw)
                if found == index:
                    return url
        return "?"

    def open(self) -> io.TextIOBase:
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
                for number, _, _, raw in _records(self.path, self.format):
                    header = self.format == "csv" and number == 1
                    if header or (raw.strip() and self._parse(number, raw)[2]):
                        copy.write(raw)
                copy.flush()
                os.fsync(copy.fileno())
            shutil.copymode(self.path, temporary)
            os.replace(temporary, self.path)
        except BaseException:
            os.unlink(temporary)
            raise


class AppendingOutput:
    """The text stream a writer appends to: nothing touches the file until the first
    flush (the first row), so a mismatched input leaves it as it was; a CSV header is
    dropped when the file has one.
    """

    def __init__(self, rows: RecordedRows) -> None:
        self._rows = rows
        self._held: list[str] = []
        self._file: io.TextIOBase | None = None

    def write(self, text: str) -> int:
        if self._file is None:
            self._held.append(text)
        else:
            self._file.write(text)
        return len(text)

    def flush(self) -> None:
        if self._file is None:
            self._file = self._rows.open()
            text = "".join(self._held)
            if self._rows.header:  # the writer's header is the first line it wrote
                text = text.partition("\n")[2]
            self._file.write(text)
        self._file.flush()

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
