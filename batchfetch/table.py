"""The result table: a run's rows in input order, with its summary and ways to save it."""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

from .errors import FetchFailedError
from .results import FetchResult, Summary
from .writers import format_for_path, open_target, render_table, writer_for

__all__ = ["ResultTable"]


class ResultTable(Sequence[FetchResult]):
    """The rows of a run, one per input, in input order.

    Example::

        >>> table = ResultTable([FetchResult(0, "http://127.0.0.1/", ok=True, status=200)])
        >>> table
        <ResultTable 1 ok, 0 failed>
        >>> [row.status for row in table.succeeded]
        [200]
    """

    def __init__(self, rows: Iterable[FetchResult], wall_time: float | None = None) -> None:
        self._rows = sorted(rows, key=lambda row: row.index)
        #: Seconds from the start of the run to its last row (None when unknown).
        self.wall_time = wall_time

    @overload
    def __getitem__(self, index: int) -> FetchResult: ...
    @overload
    def __getitem__(self, index: slice) -> list[FetchResult]: ...

    def __getitem__(self, index):
        return self._rows[index]

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[FetchResult]:
        return iter(self._rows)

    @property
    def succeeded(self) -> list[FetchResult]:
        """Rows whose ``ok`` is True, in input order."""
        return [row for row in self._rows if row.ok]

    @property
    def failed(self) -> list[FetchResult]:
        """Rows whose ``ok`` is False, in input order."""
        return [row for row in self._rows if not row.ok]

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
        return [row.to_record(include) for row in self._rows]

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
        include = self._has_bodies() if include_body is None else include_body
        with open_target(target) as stream:
            writer = writer_for(fmt, stream, include_body=include)
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

    def to_pandas(self):
        """A pandas DataFrame of the rows (needs pandas installed)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("to_pandas() needs pandas: pip install pandas") from None
        return pandas.DataFrame.from_records(self.to_records(), columns=None)

    def render(self, url_width: int | None = 60, width: int | None = None) -> str:
        """A fixed-width text table of the rows (what ``str(table)`` shows), with the message
        of each failed row; URLs cut at ``url_width`` characters, or, with ``width``, the
        URLs and messages fitted into that many columns."""
        return render_table(self._rows, url_width=url_width, width=width)

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        ok = sum(1 for row in self._rows if row.ok)
        return f"<ResultTable {ok} ok, {len(self._rows) - ok} failed>"
