"""The output formats, each declared once in :data:`OUTPUT_FORMATS` (its name, the file
suffixes that pick it, whether its rows stream, whether a file of it can be resumed), with
the writer of each and the reader that gives a resumable format's rows back.

csv and jsonl writers write and flush each row as it arrives, so memory stays
flat on huge inputs; json writes an array incrementally too, but is only valid
once closed.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any

from .results import RECORD_TYPES, FetchResult, record_columns

__all__ = ["FORMATS", "OUTPUT_FORMATS", "OutputFormat", "output_format", "format_for_path",
           "writer_for", "open_target", "render_table", "RowWriter", "RowReader",
           "neutralize_cell", "restore_cell"]

#: What makes a spreadsheet read a CSV cell as a formula (OWASP, "CSV Injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralize_cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: a leading ``'`` when ``text`` would start a
    formula, as OWASP recommends. A text already starting with ``'`` before such a character
    gets one more, so :func:`restore_cell` gives every text back exactly.

    Example::

        >>> neutralize_cell("=1+2"), neutralize_cell("'=1"), neutralize_cell("OK")
        ("'=1+2", "''=1", 'OK')
    """
    return "'" + text if text.lstrip("'").startswith(_FORMULA_STARTS) else text


def restore_cell(cell: str) -> str:
    """The text :func:`neutralize_cell` was given.

    Example::

        >>> restore_cell("'@SUM(A1)"), restore_cell("'quoted")
        ('@SUM(A1)', "'quoted")
    """
    if cell.startswith("'") and cell.lstrip("'").startswith(_FORMULA_STARTS):
        return cell[1:]
    return cell


@contextlib.contextmanager
def open_target(target: Any) -> Iterator[IO[str]]:
    """Yield a text stream for a path (opened and closed here) or a file object (left open)."""
    if isinstance(target, (str, os.PathLike)):
        with open(target, "w", encoding="utf-8", newline="") as stream:
            yield stream
    else:
        yield target


class RowWriter:
    """Writes rows to a stream in one format; ``close()`` finishes the document."""

    #: The writer puts the rows in input order itself (it holds them until ``close()``).
    orders_rows = False

    def __init__(self, stream: IO[str], include_body: bool = False,
                 columns: tuple[str, ...] | None = None, *, headers: bool = False,
                 header_columns: Sequence[str] = ()) -> None:
        self.stream = stream
        self.include_body = include_body
        #: What records hold besides COLUMNS and the body (FetchResult.to_record's keywords).
        self.shape = {"headers": headers, "header_columns": tuple(header_columns)}
        self.columns = columns or record_columns(include_body, **self.shape)
        self.rows_written = 0

    def write(self, row: FetchResult) -> None:
        self._write(row.to_record(self.include_body, **self.shape))
        self.rows_written += 1

    def _write(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """The input is done (not interrupted): what a run store records; a file needs
        nothing more than :meth:`close`."""

    def close(self) -> None:
        self.stream.flush()


class CsvWriter(RowWriter):
    """CSV with a header row; ``None`` becomes an empty cell, booleans true/false, and a text
    cell that a spreadsheet would run as a formula starts with ``'`` (:func:`neutralize_cell`:
    ``reason``, ``content_type``, ``message``, ``final_url`` and ``body`` come from servers).
    """

    def __init__(self, stream: IO[str], include_body: bool = False,
                 columns: tuple[str, ...] | None = None, **shape: Any) -> None:
        super().__init__(stream, include_body, columns, **shape)
        # RFC 4180's CRLF: with a bare "\n" terminator the csv module leaves a lone "\r"
        # in a field unquoted, and no reader gets that row back. Columns a resumed older
        # file does not have are left out of its rows.
        self._csv = csv.DictWriter(stream, fieldnames=self.columns, extrasaction="ignore")
        self._csv.writeheader()

    def _write(self, record: dict[str, Any]) -> None:
        cells = {}
        for key, value in record.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif value is not None and not isinstance(value, (str, int, float)):
                value = json.dumps(value, ensure_ascii=False)  # an id that is a list or object
            if isinstance(value, str):
                value = neutralize_cell(value)
            cells[key] = value
        self._csv.writerow(cells)
        self.stream.flush()


class JsonLinesWriter(RowWriter):
    """One JSON object per line, flushed per row."""

    def _write(self, record: dict[str, Any]) -> None:
        self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.stream.flush()


class JsonWriter(RowWriter):
    """A JSON array of objects, written incrementally."""

    def _write(self, record: dict[str, Any]) -> None:
        self.stream.write(("[\n" if self.rows_written == 0 else ",\n")
                          + json.dumps(record, ensure_ascii=False))

    def close(self) -> None:
        self.stream.write("[]\n" if self.rows_written == 0 else "\n]\n")
        super().close()


class TableWriter(RowWriter):
    """Collects rows and prints the fixed-width table when closed."""

    orders_rows = True

    def __init__(self, stream: IO[str], include_body: bool = False,
                 columns: tuple[str, ...] | None = None, **shape: Any) -> None:
        super().__init__(stream, include_body, columns, **shape)
        self._rows: list[FetchResult] = []

    def write(self, row: FetchResult) -> None:
        self._rows.append(row)
        self.rows_written += 1

    def close(self) -> None:
        self._rows.sort(key=lambda row: row.index)
        self.stream.write(render_table(self._rows, url_width=None,
                                       width=_terminal_width(self.stream)) + "\n")
        super().close()


def _terminal_width(stream: IO[str]) -> int | None:
    """The columns of the terminal ``stream`` writes to; None for a file or a pipe, where
    the table is whole."""
    try:
        return os.get_terminal_size(stream.fileno()).columns if stream.isatty() else None
    except (AttributeError, ValueError, OSError):  # not a real file, or not a terminal
        return None


def _store_writer(*_args: Any, **_keywords: Any) -> RowWriter:
    raise ValueError("a run store is written through its path, not a stream: "
                     "batchfetch.store.SqliteWriter(path) or ResultTable.to_sqlite(path)")


class RowReader:
    """Gives back, one record at a time, the rows a writer of its format wrote to a file."""

    #: The file's first line names its columns.
    header = False
    #: A record may go on over several lines inside double quotes.
    quoted_lines = False

    def records(self, stream: IO[bytes]) -> Iterator[tuple[int, int, bytes]]:
        """``(its first line's number, its end offset, its bytes)`` of each complete
        record of ``stream``, the header included.

        A record is complete when it ends with a newline (and, with ``quoted_lines``, has
        an even number of quotes: a newline inside a quoted field leaves the count odd).
        What follows the last complete record (a row cut by kill -9) is not yielded.
        """
        position = number = quotes = 0
        first_line, pending = 1, b""
        for raw in stream:
            number += 1
            position += len(raw)
            pending += raw
            if self.quoted_lines:
                quotes += raw.count(b'"')
            if not raw.endswith(b"\n") or quotes % 2:
                continue
            yield first_line, position, pending
            first_line, pending, quotes = number + 1, b"", 0

    def columns(self, raw: bytes) -> tuple[str, ...]:
        """The column names a header record holds."""
        raise NotImplementedError

    def record(self, raw: bytes, columns: tuple[str, ...]) -> dict[str, Any]:
        """What :meth:`FetchResult.to_record` gave the writer, from one record of a file
        with ``columns``, for :meth:`FetchResult.from_record`; ``ValueError`` if it is none."""
        raise NotImplementedError


class JsonLinesReader(RowReader):
    """JSON Lines: each line is the record itself."""

    def record(self, raw: bytes, columns: tuple[str, ...]) -> dict[str, Any]:
        record = json.loads(raw.decode("utf-8"))
        if not isinstance(record, dict):
            raise ValueError(f"a JSON {type(record).__name__}, not an object")
        return record


def _true_or_false(cell: str) -> bool:
    if cell not in ("true", "false"):
        raise ValueError(f"{cell!r} is not true or false")
    return cell == "true"


def read_id_cell(cell: str) -> Any:
    """An id: a number, list or object CsvWriter wrote as JSON, or text. (A CSV file cannot
    tell the id 7 from the id "7"; JSON Lines can.)

    Example::

        >>> read_id_cell("7"), read_id_cell("[1, 2]"), read_id_cell("a7")
        (7, [1, 2], 'a7')
    """
    text = restore_cell(cell)
    if text != cell:
        return text  # neutralised: it was text
    try:
        value = json.loads(cell)
    except ValueError:
        return cell
    return cell if isinstance(value, str) else value


def _cell_reader(types: tuple[type, ...]) -> Callable[[str], Any]:
    if str in types:
        return restore_cell
    if bool in types:
        return _true_or_false
    if float in types:
        return float
    return int if int in types else read_id_cell


#: How CsvReader reads each column's cells back (text columns: restore_cell).
_CELL_READERS = {name: _cell_reader(types) for name, types in RECORD_TYPES.items()}
#: Columns whose empty cell is an empty text; any other empty cell is the column's default.
_TEXT_COLUMNS = frozenset(name for name, types in RECORD_TYPES.items() if types == (str,))


class CsvReader(RowReader):
    """CSV with a header: cells back to the values :class:`CsvWriter` was given (an empty
    cell is the column's default: None for status, id and an absent body)."""

    header = True
    quoted_lines = True

    def columns(self, raw: bytes) -> tuple[str, ...]:
        return tuple(self._cells(raw))

    def record(self, raw: bytes, columns: tuple[str, ...]) -> dict[str, Any]:
        cells = self._cells(raw)
        if len(cells) != len(columns):
            raise ValueError(f"{len(cells)} cells, expected {len(columns)}")
        return {name: _CELL_READERS.get(name, restore_cell)(cell)
                for name, cell in zip(columns, cells) if cell or name in _TEXT_COLUMNS}

    @staticmethod
    def _cells(raw: bytes) -> list[str]:
        # The csv module refuses a field over 128 KiB, which a kept body often is. Its
        # limit is the process's: raised for this one record only, and put back (no
        # greenlet runs in between).
        limit = csv.field_size_limit()
        csv.field_size_limit(max(limit, len(raw)))
        try:
            return next(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
        except csv.Error as exc:
            raise ValueError(str(exc)) from None
        finally:
            csv.field_size_limit(limit)


@dataclasses.dataclass(frozen=True)
class OutputFormat:
    """One output format: everything the writers, the command line, :mod:`batchfetch.resume`
    and :class:`~batchfetch.ResultTable` need to know of it.

    ``suffixes`` pick it for an output file (the first is the one to suggest); ``streams``:
    each row is written as it completes, in flat memory (the command writes the others at
    the end, in input order); ``resumable``: ``resume`` can append the rest of the rows to
    a file of it, which takes rows that stream and a ``reader``.
    """

    name: str
    suffixes: tuple[str, ...]
    streams: bool
    resumable: bool
    writer: Callable[..., RowWriter]
    reader: RowReader | None = None

    def __post_init__(self) -> None:
        if self.resumable and not (self.streams and self.reader):
            raise ValueError(f"format {self.name}: a resumable format streams and has a reader")


#: Every output format by name, in the order the command line lists them.
OUTPUT_FORMATS: dict[str, OutputFormat] = {spec.name: spec for spec in (
    OutputFormat("table", (".txt",), streams=False, resumable=False, writer=TableWriter),
    OutputFormat("csv", (".csv",), streams=True, resumable=True, writer=CsvWriter,
                 reader=CsvReader()),
    OutputFormat("jsonl", (".jsonl", ".ndjson"), streams=True, resumable=True,
                 writer=JsonLinesWriter, reader=JsonLinesReader()),
    OutputFormat("json", (".json",), streams=False, resumable=False, writer=JsonWriter),
    # A run store: a path, not a stream (the command and ResultTable.to_sqlite know).
    OutputFormat("sqlite", (".db", ".sqlite", ".sqlite3"), streams=True, resumable=False,
                 writer=_store_writer),
)}
FORMATS = tuple(OUTPUT_FORMATS)
_BY_SUFFIX = {suffix: spec for spec in OUTPUT_FORMATS.values() for suffix in spec.suffixes}


def output_format(name: str) -> OutputFormat:
    """The format called ``name``; ``ValueError`` naming the formats if none is.

    Example::

        >>> output_format("jsonl").suffixes, output_format("json").resumable
        (('.jsonl', '.ndjson'), False)
    """
    try:
        return OUTPUT_FORMATS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown format {name!r}; expected one of {', '.join(FORMATS)}"
                         ) from None


def format_for_path(path: str | os.PathLike[str]) -> OutputFormat:
    """The format a file's suffix picks, whatever its case; JSON Lines for a name without
    one. Raises ``ValueError`` for a suffix no format has (out.xlsx is not JSON Lines).

    Example::

        >>> format_for_path("rows.CSV").name, format_for_path("rows").name
        ('csv', 'jsonl')
    """
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if not suffix:
        return OUTPUT_FORMATS["jsonl"]
    try:
        return _BY_SUFFIX[suffix]
    except KeyError:
        raise ValueError(f"cannot tell a format from {suffix!r}; expected one of "
                         f"{', '.join(_BY_SUFFIX)}") from None


def writer_for(fmt: str, stream: IO[str], include_body: bool = False,
               columns: tuple[str, ...] | None = None, **shape: Any) -> RowWriter:
    """A writer of format ``fmt`` (one of :data:`FORMATS`) over ``stream``; ``columns``
    (a CSV file's, when resuming one written before the latest columns) narrows a CSV's;
    ``headers`` and ``header_columns`` (``shape``) add the response headers' columns.

    Example::

        >>> import io
        >>> out = io.StringIO()
        >>> writer = writer_for("jsonl", out)
        >>> writer.write(FetchResult(0, "http://127.0.0.1/", ok=True, status=200))
        >>> out.getvalue()[:24]
        '{"index": 0, "id": null,'
    """
    return output_format(fmt).writer(stream, include_body, columns, **shape)


def _clip(text: str, width: int | None) -> str:
    text = " ".join(text.split()) if "\n" in text or "\r" in text else text
    if width is None or len(text) <= width:
        return text
    return text[: max(width - 3, 1)] + "..."


#: The narrowest the URL and message columns get on a narrow terminal.
_NARROWEST = 20


def render_table(rows: Iterable[FetchResult], url_width: int | None = 60,
                 width: int | None = None) -> str:
    """A fixed-width table: index, status, error, time, size, attempts, URL and, when a row
    failed, the message that says why.

    With ``width`` (a terminal's columns), the URL and message columns share what the
    others leave, the message taking at most half; otherwise URLs are cut at
    ``url_width`` characters (None: never) and messages are whole.

    Example::

        >>> failed = FetchResult(1, "http://127.0.0.1:9/x", error="connect",
        ...                      message="ConnectionError: refused")
        >>> print(render_table([FetchResult(0, "http://127.0.0.1/", ok=True, status=200),
        ...                     failed]))
        #  status  error    ms  bytes  tries  url                   message
        0     200  ok        0      0      0  http://127.0.0.1/
        1       -  connect   0      0      0  http://127.0.0.1:9/x  ConnectionError: refused
    """
    rows = list(rows)
    messages = ["" if row.ok else row.message for row in rows]
    changes = any(row.change for row in rows)  # a run with since: what changed comes first
    header = ("#", "status") + (("change",) if changes else ()) + (
        "error", "ms", "bytes", "tries", "url") + (("message",) if any(messages) else ())
    fixed = [(str(row.index), "-" if row.status is None else str(row.status))
             + ((row.change,) if changes else ())
             + (row.error or "ok", f"{row.elapsed * 1000:.0f}", str(row.size),
                str(row.attempts)) for row in rows]
    count = 7 if changes else 6  # the fixed columns
    widths = [max(len(line[i]) for line in [header[:count], *fixed]) for i in range(count)]
    message_width: int | None = None
    if width is not None:
        room = width - sum(widths) - 2 * len(header[count:]) - 2 * (count - 1)
        longest_url = max([len(header[count]), *(len(row.url) for row in rows)])
        if len(header) > count + 1:
            longest_message = max(len(header[count + 1]), *map(len, messages))
            message_width = max(_NARROWEST, min(longest_message, room // 2))
            url_width = max(_NARROWEST, min(longest_url, room - message_width))
            message_width = max(_NARROWEST, room - url_width)
        else:
            url_width = max(_NARROWEST, room)
    lines = [header]
    for cells, row, message in zip(fixed, rows, messages):
        lines.append(cells + (_clip(row.url, url_width),) + (
            (_clip(message, message_width),) if len(header) > count + 1 else ()))
    widths += [max(len(line[i]) for line in lines) for i in range(count, len(header))]
    right = {0, 1, count - 3, count - 2, count - 1}
    return "\n".join(
        "  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                  for i, cell in enumerate(line)).rstrip()
        for line in lines)
