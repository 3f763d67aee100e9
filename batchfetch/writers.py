"""Renderers for rows: csv, jsonl and json writers that stream, and the text table.

csv and jsonl writers write and flush each row as it arrives, so memory stays
flat on huge inputs; json writes an array incrementally too, but is only valid
once closed.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Iterable, Iterator
from typing import IO, Any

from .results import COLUMNS, FetchResult

__all__ = ["FORMATS", "writer_for", "open_target", "render_table", "RowWriter",
           "neutralize_cell", "restore_cell"]

FORMATS = ("table", "csv", "jsonl", "json")

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


def _columns(include_body: bool) -> tuple[str, ...]:
    return COLUMNS + (("body", "body_encoding") if include_body else ())


class RowWriter:
    """Writes rows to a stream in one format; ``close()`` finishes the document."""

    def __init__(self, stream: IO[str], include_body: bool = False,
                 columns: tuple[str, ...] | None = None) -> None:
        self.stream = stream
        self.include_body = include_body
        self.columns = columns or _columns(include_body)
        self.rows_written = 0

    def write(self, row: FetchResult) -> None:
        self._write(row.to_record(self.include_body))
        self.rows_written += 1

    def _write(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stream.flush()


class CsvWriter(RowWriter):
    """CSV with a header row; ``None`` becomes an empty cell, booleans true/false, and a text
    cell that a spreadsheet would run as a formula starts with ``'`` (:func:`neutralize_cell`:
    ``reason``, ``content_type``, ``message``, ``final_url`` and ``body`` come from servers).
    """

    def __init__(self, stream: IO[str], include_body: bool = False,
                 columns: tuple[str, ...] | None = None) -> None:
        super().__init__(stream, include_body, columns)
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

    def __init__(self, stream: IO[str], include_body: bool = False) -> None:
        super().__init__(stream, include_body)
        self._rows: list[FetchResult] = []

    def write(self, row: FetchResult) -> None:
        self._rows.append(row)
        self.rows_written += 1

    def close(self) -> None:
        self._rows.sort(key=lambda row: row.index)
        self.stream.write(render_table(self._rows) + "\n")
        super().close()


_WRITERS = {"csv": CsvWriter, "jsonl": JsonLinesWriter, "json": JsonWriter,
            "table": TableWriter}


def writer_for(fmt: str, stream: IO[str], include_body: bool = False,
               columns: tuple[str, ...] | None = None) -> RowWriter:
    """A writer of format ``fmt`` (one of :data:`FORMATS`) over ``stream``; ``columns``
    (a CSV file's, when resuming one written before the latest columns) narrows a CSV's.

    Example::

        >>> import io
        >>> out = io.StringIO()
        >>> writer = writer_for("jsonl", out)
        >>> writer.write(FetchResult(0, "http://127.0.0.1/", ok=True, status=200))
        >>> out.getvalue()[:24]
        '{"index": 0, "id": null,'
    """
    try:
        writer_class = _WRITERS[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}") from None
    if columns is not None and writer_class is CsvWriter:
        return CsvWriter(stream, include_body, columns)
    return writer_class(stream, include_body)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def render_table(rows: Iterable[FetchResult], url_width: int = 60) -> str:
    """A fixed-width table: index, status, error, time, size, attempts, URL."""
    header = ("#", "status", "error", "ms", "bytes", "tries", "url")
    lines = [header]
    for row in rows:
        status = "-" if row.status is None else str(row.status)
        lines.append((str(row.index), status, row.error or "ok", f"{row.elapsed * 1000:.0f}",
                      str(row.size), str(row.attempts), _clip(row.url, url_width)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {0, 1, 3, 4, 5}
    return "\n".join(
        "  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                  for i, cell in enumerate(line)).rstrip()
        for line in lines)
