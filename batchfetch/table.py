"""The result table: a run's rows in input order, with its summary, filters and ways to save
it; a part of a table (a filter, a slice) is a table too."""
from __future__ import annotations

import html
import os
import urllib.parse
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any, overload

from .errors import ERROR_KINDS, FetchFailedError
from .results import FetchResult, Summary, record_columns
from .writers import format_for_path, open_target, render_table, writer_for

__all__ = ["PANDAS_DTYPES", "ResultTable"]

#: ``where``'s "no condition" for status, where None means "no response".
_ANY: Any = object()


class ResultTable(Sequence[FetchResult]):
    """The rows of a run, one per input, in input order.

    Filters (:attr:`succeeded`, :attr:`failed`, :meth:`where`) and slices give tables, so
    :meth:`summary`, :meth:`to_pandas` and the writers work on any part of a run.

    Example::

        >>> table = ResultTable([FetchResult(0, "http://127.0.0.1/", ok=True, status=200),
        ...                      FetchResult(1, "http://127.0.0.1:9/", error="connect",
        ...                                  message="refused")])
        >>> table.failed
        <ResultTable 0 ok, 1 failed>
        #  status  error    ms  bytes  tries  url                  message
        1       -  connect   0      0      0  http://127.0.0.1:9/  refused
        >>> [row.status for row in table.succeeded], table.ok, table.succeeded.ok
        ([200], False, True)
    """

    def __init__(self, rows: Iterable[FetchResult], wall_time: float | None = None, *,
                 headers: bool = False, header_columns: Sequence[str] = ()) -> None:
        self._rows = sorted(rows, key=lambda row: row.index)
        #: Seconds from the start of the run to its last row (None when unknown).
        self.wall_time = wall_time
        #: The response headers' columns its records have (``response_headers`` and
        #: ``header_columns`` of the run's options).
        self.shape = {"headers": headers, "header_columns": tuple(header_columns)}

    def _part(self, rows: list[FetchResult]) -> ResultTable:
        """A table of some of this table's rows, in the order given (no run time: a part's
        rows did not run alone)."""
        part = type(self).__new__(type(self))
        part._rows, part.wall_time, part.shape = rows, None, self.shape
        return part

    @overload
    def __getitem__(self, index: int) -> FetchResult: ...
    @overload
    def __getitem__(self, index: slice) -> ResultTable: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self._part(self._rows[index])
        return self._rows[index]

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[FetchResult]:
        return iter(self._rows)

    @property
    def succeeded(self) -> ResultTable:
        """The rows whose ``ok`` is True, as a table."""
        return self._part([row for row in self._rows if row.ok])

    @property
    def failed(self) -> ResultTable:
        """The rows whose ``ok`` is False, as a table."""
        return self._part([row for row in self._rows if not row.ok])

    @property
    def ok(self) -> bool:
        """Whether every row is ok (True for no rows, as ``all``)."""
        return all(row.ok for row in self._rows)

    def where(self, *, ok: bool | None = None, error: Any = None, status: Any = _ANY,
              host: Any = None, method: Any = None) -> ResultTable:
        """The rows that match every condition given, as a table. Each condition is a value
        or a collection of values (a ``range`` of statuses, say); ``error`` is an error kind
        (``"timeout"``, an :class:`~batchfetch.ErrorKind`; ``""`` for ok rows), ``status``
        a status (None: the rows that got no response), ``host`` a host name or
        ``host:port`` of the row's URL, ``method`` a method.

        Example::

            >>> table = ResultTable([FetchResult(0, "http://a.test/x", ok=True, status=200),
            ...                      FetchResult(1, "http://b.test:81/y", status=503,
            ...                                  error="http"),
            ...                      FetchResult(2, "http://b.test:81/z", error="timeout")])
            >>> [row.index for row in table.where(host="b.test")]
            [1, 2]
            >>> [row.index for row in table.where(status=range(500, 600))]
            [1]
            >>> [row.index for row in table.where(error=["timeout", "connect"])]
            [2]
        """
        tests = []
        if ok is not None:
            tests.append(lambda row: row.ok is ok)
        if error is not None:
            errors = _values(error)
            unknown = [kind for kind in errors if kind != "" and kind not in ERROR_KINDS]
            if unknown:
                raise ValueError(f"{unknown[0]!r} is not an error kind; the kinds: "
                                 f"{', '.join(ERROR_KINDS)} ('' for ok rows)")
            tests.append(lambda row: row.error in errors)
        if status is not _ANY:  # None is a value here: the rows without a response
            statuses = _values(status)
            tests.append(lambda row: row.status in statuses)
        if method is not None:
            methods = {str(value).upper() for value in _values(method)}
            tests.append(lambda row: row.method in methods)
        if host is not None:
            hosts = {str(value).lower() for value in _values(host)}
            tests.append(lambda row: bool(_host_names(row.url) & hosts))
        return self._part([row for row in self._rows if all(test(row) for test in tests)])

    def summary(self) -> Summary:
        """Counts by status and error kind, latency p50/p90/p99, throughput."""
        return Summary.of(self._rows, self.wall_time)

    def raise_for_errors(self) -> "ResultTable":
        """Raise :class:`FetchFailedError` if any row failed; otherwise return self."""
        failed = self.failed
        if failed:
            raise FetchFailedError(failed)
        return self

    def _has_bodies(self) -> bool:
        return any(row.body is not None for row in self._rows)

    def to_records(self, include_body: bool | None = None) -> list[dict[str, Any]]:
        """Rows as dicts (JSON-ready). Bodies are included when any row kept one."""
        include = self._has_bodies() if include_body is None else include_body
        return [row.to_record(include, **self.shape) for row in self._rows]

    def write(self, target: Any, fmt: str | None = None,
              include_body: bool | None = None) -> None:
        """Write the rows to a path or a text file object, in format ``fmt`` (one of
        :data:`batchfetch.writers.FORMATS`; by default, the one a path's suffix names).
        Bodies are included when any row kept one, unless ``include_body`` says otherwise.

        Raises ``ValueError`` for an unknown format, or a file object without ``fmt``.

        Example::

            >>> import io
            >>> table = ResultTable([FetchResult(0, "http://127.0.0.1/", ok=True, status=200)])
            >>> out = io.StringIO()
            >>> table.write(out, "csv")            # a path picks the format by its suffix
            >>> out.getvalue().splitlines()[1][:30]
            '0,,http://127.0.0.1/,GET,true,'
        """
        if fmt is None:
            if not isinstance(target, (str, os.PathLike)):
                raise ValueError("give the format of a file object: write(stream, 'csv')")
            fmt = format_for_path(target).name
        if fmt == "sqlite":
            if not isinstance(target, (str, os.PathLike)):
                raise ValueError("a SQLite store is written to a path: to_sqlite('runs.db')")
            self.to_sqlite(target)
            return
        include = self._has_bodies() if include_body is None else include_body
        with open_target(target) as stream:
            writer = writer_for(fmt, stream, include_body=include, **self.shape)
            for row in self._rows:
                writer.write(row)
            writer.close()

    def to_csv(self, target: Any, include_body: bool | None = None) -> None:
        """Write the rows as CSV (header first) to a path or a text file object."""
        self.write(target, "csv", include_body)

    def to_jsonl(self, target: Any, include_body: bool | None = None) -> None:
        """Write one JSON object per row per line to a path or a text file object."""
        self.write(target, "jsonl", include_body)

    def to_json(self, target: Any, include_body: bool | None = None) -> None:
        """Write a JSON array of row objects to a path or a text file object."""
        self.write(target, "json", include_body)

    def to_sqlite(self, path: str | os.PathLike[str], options: Any = None) -> int:
        """Add the rows to a run store (:mod:`batchfetch.store`; created if missing) as one
        finished run, and return its number; ``options`` (a FetchOptions) are recorded
        with their secrets masked. Bodies are kept as BLOBs, headers as JSON.

        Raises :class:`~batchfetch.store.StoreError` for a file that is not a store (left
        as it was).

        Example::

            >>> table = ResultTable([FetchResult(0, "http://127.0.0.1/", ok=True, status=200)])
            >>> table.to_sqlite("runs.db")
            1
            >>> ResultTable.from_sqlite("runs.db")[0].status
            200
        """
        from .store import write_rows

        shown = options.to_shown_dict() if options is not None else None
        return write_rows(path, self._rows, shown)

    @classmethod
    def from_sqlite(cls, path: str | os.PathLike[str], run: int | None = None) -> ResultTable:
        """The rows of run ``run`` of a store as a table (by default its latest finished
        run); :class:`~batchfetch.store.StoreError` if the file is not a store or has no
        such run. See :meth:`to_sqlite`."""
        from .store import read_run

        rows = read_run(path, run)
        return cls(rows, headers=any(row.headers is not None for row in rows))

    def to_pandas(self, include_body: bool | None = None):
        """A pandas DataFrame of the rows, one column per field with the types of
        :data:`PANDAS_DTYPES` (``status`` is ``Int64``, so a row without one holds
        ``<NA>``, not a float NaN); ``id`` keeps its values as they are. Needs pandas.

        Example::

            >>> frame = ResultTable([FetchResult(0, "http://127.0.0.1/", ok=True, status=200),
            ...                      FetchResult(1, "x", error="invalid_url")]).to_pandas()
            >>> str(frame["status"].dtype), frame["status"].isna().tolist()
            ('Int64', [False, True])
        """
        try:
            import pandas
        except ImportError:
            raise ImportError("to_pandas() needs pandas: pip install pandas") from None
        include = self._has_bodies() if include_body is None else include_body
        columns = list(record_columns(include, **self.shape))
        frame = pandas.DataFrame.from_records(self.to_records(include), columns=columns)
        return frame.astype({name: dtype for name, dtype in PANDAS_DTYPES.items()
                             if name in frame.columns})

    def _repr_html_(self) -> str:
        """The summary line and the first rows as an HTML table (Jupyter)."""
        shown = self._rows[:_REPR_ROWS]
        cells = ["#", "status", "error", "ms", "bytes", "tries", "url", "message"]
        head = "".join(f"<th>{cell}</th>" for cell in cells)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in (
                row.index, "" if row.status is None else row.status, row.error or "ok",
                f"{row.elapsed * 1000:.0f}", row.size, row.attempts, row.url,
                "" if row.ok else row.message)) + "</tr>" for row in shown)
        more = len(self._rows) - len(shown)
        return (f"<p>{html.escape(self._title())}</p><table><thead><tr>{head}</tr></thead>"
                f"<tbody>{body}</tbody></table>"
                + (f"<p>... and {more} more rows</p>" if more else ""))

    def render(self, url_width: int | None = 60, width: int | None = None) -> str:
        """A fixed-width text table of the rows (what ``str(table)`` shows), with the message
        of each failed row; URLs cut at ``url_width`` characters, or, with ``width``, the
        URLs and messages fitted into that many columns."""
        return render_table(self._rows, url_width=url_width, width=width)

    def __str__(self) -> str:
        return self.render()

    def _title(self) -> str:
        ok = sum(1 for row in self._rows if row.ok)
        return f"<ResultTable {ok} ok, {len(self._rows) - ok} failed>"

    def __repr__(self) -> str:
        """The counts, then the first rows (what a REPL or a notebook shows)."""
        if not self._rows:
            return self._title()
        shown = self._rows[:_REPR_ROWS]
        more = len(self._rows) - len(shown)
        return "\n".join([self._title(), render_table(shown, url_width=_REPR_URL_WIDTH),
                          *([f"... and {more} more rows"] if more else [])])


#: Rows ``repr(table)`` and ``_repr_html_`` show, and how much of a URL.
_REPR_ROWS = 5
_REPR_URL_WIDTH = 50

#: The pandas dtype of each column :meth:`ResultTable.to_pandas` gives, for ``read_csv`` and
#: ``read_json`` too: ``pandas.read_csv("rows.csv", dtype=PANDAS_DTYPES)``. ``id`` holds
#: whatever the inputs gave (an empty column stays empty, not a float NaN column).
PANDAS_DTYPES = {
    "index": "int64", "id": "object", "url": "string", "method": "string", "ok": "boolean",
    "status": "Int64", "reason": "string", "elapsed": "float64", "size": "int64",
    "attempts": "int64", "final_url": "string", "content_type": "string",
    "error": "string", "message": "string", "path": "string", "waited": "float64",
    "wait_reason": "string", "throttled": "int64", "sha256": "string", "etag": "string",
    "last_modified": "string", "request_hash": "string", "change": "string",
    "body": "string", "body_encoding": "string",
}


def _values(wanted: Any) -> Collection[Any]:
    """A condition's values: a collection as it is, a single value (a str too) in a set."""
    if isinstance(wanted, (str, bytes)) or not isinstance(wanted, Collection):
        return {wanted}
    return wanted


def _host_names(url: str) -> set[str]:
    """``{host, host:port}`` of ``url`` (lower case), empty when it has none."""
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return set()
    if not host:
        return set()
    return {host, f"{host}:{port}"} if port else {host}
