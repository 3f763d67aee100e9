"""SQLite as the run store (``-o runs.db``): each run's rows and the run itself in one
file, which sqlite3, datasette or pandas (``read_sql``) can query.

Two tables (:data:`SCHEMA`): ``runs``, one row per run (start, end, options with secrets
redacted, counts; ``finished`` stays NULL for a run that was interrupted), and ``rows``,
one per input of a run, in typed columns (``body`` a BLOB, ``headers`` JSON text), with
indexes on the run and input index, the URL and the id. Rows are written from one place,
in transactions of at most :data:`TRANSACTION_ROWS` rows or :data:`TRANSACTION_SECONDS`,
so a crash loses the open transaction at most. The standard library's sqlite3, in WAL
mode.
"""
from __future__ import annotations

import datetime
import json
import os
import sqlite3
import time
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import gevent

from ._version import __version__
from .errors import BatchFetchError, OutputError, StoreError
from .resume import RecordedRows
from .results import ADDED_COLUMNS, COLUMNS, RECORD_TYPES, FetchResult, record_columns
from .writers import OUTPUT_FORMATS, RowWriter

__all__ = ["RunStore", "SqliteWriter", "StoreError", "StoredRows", "STORE_SUFFIXES",
           "is_store", "iter_records", "iter_run", "open_recorded", "read_run", "write_rows"]

#: The suffixes of an output file that is a store (``-o runs.db``).
STORE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
#: A transaction commits after this many rows, or this many seconds, whichever first.
TRANSACTION_ROWS, TRANSACTION_SECONDS = 1000, 1.0
#: Seconds to wait for another connection's lock before the file counts as locked.
LOCK_WAIT = 5.0

_SQL_TYPES = {int: "INTEGER", float: "REAL", str: "TEXT", bool: "INTEGER"}
_RUN_COLUMNS = ("run", "started", "finished", "options", "batchfetch", "total", "ok",
                "failed")
#: The columns of ``rows``: the run, COLUMNS with SQL types, the headers and the body.
ROW_COLUMNS = ("run",) + COLUMNS + ("headers", "body")
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS runs (run INTEGER PRIMARY KEY, started TEXT NOT NULL, "
    "finished TEXT, options TEXT, batchfetch TEXT, total INTEGER, ok INTEGER, "
    "failed INTEGER)",
    "CREATE TABLE IF NOT EXISTS rows (run INTEGER NOT NULL REFERENCES runs(run), "
    + ", ".join(f'"{name}" {_SQL_TYPES.get(RECORD_TYPES[name][0], "")}'.rstrip()
                for name in COLUMNS) + ", headers TEXT, body BLOB)",
    'CREATE INDEX IF NOT EXISTS rows_run_index ON rows (run, "index")',
    "CREATE INDEX IF NOT EXISTS rows_url ON rows (url)",
    "CREATE INDEX IF NOT EXISTS rows_id ON rows (id)",
)
_QUOTED = ", ".join(f'"{name}"' for name in ROW_COLUMNS)
_INSERT_ROW = f"INSERT INTO rows ({_QUOTED}) VALUES ({', '.join('?' * len(ROW_COLUMNS))})"


def is_store(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a SQLite file (by its first 16 bytes), whatever its name."""
    try:
        with open(path, "rb") as stream:
            return stream.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def _is_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL" or "disk is full" in str(exc)


class RunStore:
    """One store file, open for a run: :meth:`start` it, :meth:`add` its rows, then
    :meth:`finish` (the input is done) and :meth:`close`.

    Opening checks the file first and changes nothing in one it cannot use
    (:class:`StoreError`); a write that fails for want of space raises
    :class:`~batchfetch.errors.OutputError`, as other outputs do.

    Example::

        >>> store = RunStore("runs.db")
        >>> run = store.start({"concurrency": 16})
        >>> store.add(FetchResult(0, "http://127.0.0.1/", ok=True, status=200))
        >>> store.finish(); store.close()
        >>> [row.status for row in read_run("runs.db")]
        [200]
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.run: int | None = None
        self._pending: list[tuple] = []
        self._since = time.monotonic()
        self._timer: gevent.Greenlet | None = None  # commits a second after the first row
        self.counts = {"total": 0, "ok": 0, "failed": 0}
        self._connection = _open(self.path, create=True)

    def start(self, options: dict[str, Any] | None = None) -> int:
        """Add a run (options as JSON, secrets redacted by the caller); its number."""
        with self._writing():
            cursor = self._connection.execute(
                "INSERT INTO runs (started, options, batchfetch) VALUES (?, ?, ?)",
                (_now(), json.dumps(options, default=str) if options is not None else None,
                 __version__))
            self._connection.commit()
        self.run = cursor.lastrowid
        return self.run

    def add(self, row: FetchResult) -> None:
        """Add a row to the run; committed with the next full transaction."""
        self._pending.append(_values(self.run, row))
        self.counts["total"] += 1
        self.counts["ok" if row.ok else "failed"] += 1
        if len(self._pending) >= TRANSACTION_ROWS or \
                time.monotonic() - self._since >= TRANSACTION_SECONDS:
            self.commit()
        elif self._timer is None:  # a slow next row must not hold this one uncommitted
            self._timer = gevent.spawn_later(TRANSACTION_SECONDS, self._commit_in_time)

    def _commit_in_time(self) -> None:
        self._timer = None
        try:
            self.commit()
        except BatchFetchError:
            pass  # the next add() or close() meets the same error, where it is reported

    def commit(self) -> None:
        """Write the rows added since the last commit, in one transaction."""
        if self._timer is not None and self._timer is not gevent.getcurrent():
            self._timer.kill(block=False)
            self._timer = None
        if self._pending:
            with self._writing():
                self._connection.executemany(_INSERT_ROW, self._pending)
                self._connection.commit()
            self._pending = []
        self._since = time.monotonic()

    def finish(self) -> None:
        """The run's input is done: commit, and record its end and counts."""
        self.commit()
        with self._writing():
            self._connection.execute(
                "UPDATE runs SET finished = ?, total = ?, ok = ?, failed = ? WHERE run = ?",
                (_now(), self.counts["total"], self.counts["ok"], self.counts["failed"],
                 self.run))
            self._connection.commit()

    def close(self) -> None:
        """Commit what is pending (an interrupted run stays unfinished) and close."""
        try:
            self.commit()
        finally:
            self._connection.close()


    def resume(self, run: int, counts: dict[str, int], drop_failed: bool) -> None:
        """Append to ``run`` (unfinished) from now on, whose rows so far count ``counts``;
        ``drop_failed`` deletes its failed rows first (they are fetched again)."""
        self.run, self.counts = run, dict(counts)
        if drop_failed:
            with self._writing():
                self._connection.execute("DELETE FROM rows WHERE run = ? AND ok = 0", (run,))
                self._connection.commit()

    def _writing(self):
        return _Writing(self.path)


class _Writing:
    """Turns a failed write into OutputError (a full disk) or StoreError (the rest)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, _tb: Any) -> bool:
        # The file was checked when it was opened: a write that fails now (a full disk, a
        # lock held past LOCK_WAIT) is an output error, as for other outputs (exit 74).
        if isinstance(exc, sqlite3.Error):
            errno = 28 if _is_full(exc) else 5
            raise OutputError(self.path, OSError(errno, str(exc))) from exc
        return False


def _open(path: str, create: bool) -> sqlite3.Connection:
    """A connection to ``path`` after checking it is a store (or SQLite without our
    tables, to which they are added when ``create``); StoreError, changing nothing, if it
    cannot be used."""
    if not create and not os.path.exists(path):
        raise StoreError(path, "no such file")
    try:
        connection = sqlite3.connect(path, timeout=LOCK_WAIT, isolation_level="DEFERRED")
    except sqlite3.Error as exc:
        raise StoreError(path, f"cannot open it: {exc}") from None
    try:
        tables = {name: [column[1] for column in connection.execute(
                      f'PRAGMA table_info("{name}")')]
                  for (name,) in connection.execute(
                      "SELECT name FROM sqlite_master WHERE type = 'table'")}
        # A store written before the latest columns takes them (they are added, empty).
        added = [name for name in ADDED_COLUMNS if "rows" in tables
                 and name not in tables["rows"]]
        for name, wanted in (("runs", _RUN_COLUMNS),
                             ("rows", [c for c in ROW_COLUMNS if c not in added])):
            if name in tables and not set(wanted) <= set(tables[name]):
                raise StoreError(path, f"its {name} table is not batchfetch's (columns "
                                       f"{', '.join(tables[name])})")
        others = sorted(name for name in tables
                        if name not in ("runs", "rows") and not name.startswith("sqlite_"))
        if others and not {"runs", "rows"} <= set(tables):
            raise StoreError(path, f"it holds other tables ({', '.join(others)}): batchfetch "
                                   "keeps its runs in a file of its own")
        if create:
            # Another writer holding the file past LOCK_WAIT: refused before any change.
            connection.execute("BEGIN IMMEDIATE")
            connection.rollback()
            if connection.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
                raise StoreError(path, "SQLite cannot use WAL mode on it")
            for statement in SCHEMA:
                connection.execute(statement)
            for name in added:
                connection.execute(f'ALTER TABLE rows ADD COLUMN "{name}" '
                                   f'{_SQL_TYPES[RECORD_TYPES[name][0]]}')
            connection.commit()
        elif "rows" not in tables:
            raise StoreError(path, "it holds no batchfetch runs")
    except sqlite3.DatabaseError as exc:
        connection.close()
        problem = str(exc)
        if "locked" in problem:
            problem += " (another program is writing to it)"
        elif "not a database" in problem or "malformed" in problem:
            problem = f"it is not a SQLite file batchfetch can use ({exc})"
        raise StoreError(path, problem) from None
    except StoreError:
        connection.close()
        raise
    return connection


def _values(run: int | None, row: FetchResult) -> tuple:
    values: list[Any] = [run]
    for name in COLUMNS:
        value = getattr(row, name)
        if name == "id" and value is not None and (isinstance(value, bool) or not (
                isinstance(value, (float, str)) or (isinstance(value, int)
                                                    and -2**63 <= value < 2**63))):
            # SQLite's integers are 64-bit, and it has no bool: a list, a date, a huge int
            # or true is kept as text (as JSON but for the int)
            value = str(value) if type(value) is int else json.dumps(value, default=str)
        values.append(value)
    values.append(json.dumps(row.headers) if row.headers is not None else None)
    values.append(row.body)
    return tuple(values)


def read_run(path: str | os.PathLike[str], run: int | None = None) -> list[FetchResult]:
    """The rows of run ``run`` of a store, in input order (by default the latest finished
    run); StoreError if there is none.

    Example: see :class:`RunStore`.
    """
    return list(iter_run(path, run))


def iter_run(path: str | os.PathLike[str], run: int | None = None,
             columns: Sequence[str] = COLUMNS) -> Iterator[FetchResult]:
    """:func:`read_run`'s rows one at a time (``columns`` only, with COLUMNS: the headers
    and body too)."""
    if tuple(columns) != COLUMNS:
        for record in iter_records(path, run, columns):
            yield FetchResult(**record)
        return
    present: list[str] = []
    for values in _selected(os.fspath(path), run, COLUMNS + ("headers", "body"), present):
        yield _row(present[:-2], values)


def iter_records(path: str | os.PathLike[str], run: int | None = None,
                 columns: Sequence[str] = COLUMNS) -> Iterator[dict[str, Any]]:
    """The ``columns`` of run ``run``'s rows (by default the latest finished run's), as
    SQLite holds them, one dict a row in input order: what reading a run costs without
    building its rows. A column an older store lacks is left out."""
    path = os.fspath(path)
    present: list[str] = []
    for values in _selected(path, run, columns, present):
        yield dict(zip(present, values))


def _selected(path: str, run: int | None, columns: Sequence[str],
              present: list[str] | None = None) -> Iterator[tuple]:
    """The values of ``columns`` (those the store has, listed in ``present``) of each row
    of ``run``; StoreError for a store without it."""
    connection = _open(path, create=False)
    try:
        if run is None:
            run = connection.execute(
                "SELECT max(run) FROM runs WHERE finished IS NOT NULL").fetchone()[0]
            if run is None:
                raise StoreError(path, "it holds no finished run")
        elif connection.execute("SELECT 1 FROM runs WHERE run = ?", (run,)).fetchone() is None:
            raise StoreError(path, f"it holds no run {run}")
        there = {column[1] for column in connection.execute('PRAGMA table_info("rows")')}
        picked = [name for name in columns if name in there]  # an older store's
        if present is not None:
            present[:] = picked
        names = ", ".join(f'"{name}"' for name in picked)
        yield from connection.execute(
            f'SELECT {names} FROM rows WHERE run = ? ORDER BY "index", rowid', (run,))
    except sqlite3.DatabaseError as exc:
        raise StoreError(path, str(exc)) from None
    finally:
        connection.close()


def _row(columns: Sequence[str], values: Sequence[Any]) -> FetchResult:
    fields = dict(zip(columns, values))
    fields["ok"] = bool(fields["ok"])
    for name, types in RECORD_TYPES.items():
        if name in fields and fields[name] is None and types[0] in (str, int, float) \
                and type(None) not in types and name != "status":
            fields[name] = types[0]()
    headers, body = values[len(columns)], values[len(columns) + 1]
    return FetchResult(**fields, headers=json.loads(headers) if headers else None,
                       body=bytes(body) if body is not None else None)


def write_rows(path: str | os.PathLike[str], rows: Iterable[FetchResult],
               options: dict[str, Any] | None = None) -> int:
    """Add ``rows`` to a store as one finished run; its number."""
    store = RunStore(path)
    try:
        run = store.start(options)
        for row in rows:
            store.add(row)
        store.finish()
    finally:
        store.close()
    return run


class SqliteWriter(RowWriter):
    """Rows into a run store (:mod:`batchfetch.store`): ``stream`` is the file's path, and
    ``options`` (shown, secrets masked) go on the run's row. Bodies are kept as BLOBs when
    the rows have them, headers as JSON; ``columns`` and ``header_columns`` change nothing
    (every column is stored; a header is in ``headers``)."""

    def __init__(self, stream: Any, include_body: bool = False,
                 columns: tuple[str, ...] | None = None, *, headers: bool = False,
                 header_columns: Sequence[str] = (),
                 options: dict[str, Any] | None = None) -> None:
        super().__init__(stream, include_body, columns, headers=headers,
                         header_columns=header_columns)
        self.store = RunStore(stream)  # the file is checked now; the run starts with a row
        self.options = options

    def write(self, row: FetchResult) -> None:
        if self.store.run is None:
            self.store.start(self.options)
        self.store.add(row)
        self.rows_written += 1

    def finish(self) -> None:
        if self.store.run is None:  # an input with nothing to fetch: an empty run
            self.store.start(self.options)
        self.store.finish()

    def close(self) -> None:
        self.store.close()


class StoredRows(RecordedRows):
    """``--resume -o runs.db``: the latest run of a store, read as
    :class:`~batchfetch.resume.RecordedRows` reads a file (the same checks that the input
    is the one that wrote it): the rows fetched now, those of the inputs it has no row for
    (and with retry_failed, of its failed rows, deleted first), are added to it, and it is
    marked finished when the input is done. A store with no run starts one.

    The store is not written to until the first row (or the end of the rows): another
    input's run raises :class:`~batchfetch.resume.ResumeError` and leaves it as it was.
    """

    def __init__(self, path: str | os.PathLike[str], fmt: str | None = None,
                 include_body: bool = False, retry_failed: bool = False,
                 options: Any = None, **shape: Any) -> None:
        self.path = os.fspath(path)
        self.format, self.reader = OUTPUT_FORMATS["sqlite"], None
        self.include_body, self.retry_failed, self.shape = include_body, retry_failed, shape
        self.columns = record_columns(include_body, **shape)
        self.options = options
        self.count = self.failed = 0
        self.last_index = -1
        self.header = self.partial = self._appended = False
        self._state, self._url_hash, self._end = bytearray(), array("q"), 0
        self.run: int | None = None
        if os.path.exists(self.path):
            try:
                connection = _open(self.path, create=False)
            except StoreError as exc:
                if exc.problem != "it holds no batchfetch runs":
                    raise
            else:
                try:
                    self.run = connection.execute("SELECT max(run) FROM runs").fetchone()[0]
                finally:
                    connection.close()
                if self.run is not None:  # what each input has (no bodies: 9 bytes each)
                    for number, row in enumerate(iter_run(
                            self.path, self.run, ("index", "url", "ok")), 1):
                        self._add(number, row)
        #: A run is there to continue.
        self.existed = self.run is not None

    def describe(self) -> str:
        note = super().describe()
        return note.replace(f"in {self.path}", f"in run {self.run} of {self.path}", 1)

    def _lines(self) -> Iterator[tuple[bytes, FetchResult | None]]:
        if self.run is not None:
            for row in iter_run(self.path, self.run):
                yield b"", row

    def appending(self, rows: Iterator[FetchResult]) -> Iterator[FetchResult]:
        """``rows``, each added to the run before it is yielded (committed in bounded
        transactions); the run is finished when ``rows`` end, not when they are closed
        early (an interruption)."""
        if self._appended:
            raise ValueError(f"rows were appended to {self.path} already: read it again "
                             f"for another run")
        self._appended = True
        return self._append_to_store(rows)

    def _append_to_store(self, rows: Iterator[FetchResult]) -> Iterator[FetchResult]:
        store: RunStore | None = None
        ended = False
        try:
            for row in rows:
                store = store or self._open_store()
                store.add(row)
                yield row
            ended = True
        finally:
            rows.close()  # first: it cancels what is in flight
            # Every row yielded was reported: it stays, whatever stopped the run (another
            # input's run stops it before the first row, and the store is not opened).
            if ended:
                store = store or self._open_store()
                store.finish()
            if store is not None:
                store.close()

    def _open_store(self) -> RunStore:
        store = RunStore(self.path)
        if self.run is None:
            store.start(self.options.to_shown_dict() if self.options is not None else None)
        else:
            failed = self.failed if self.retry_failed else 0
            store.resume(self.run, {"total": self.count - failed,
                                    "ok": self.count - self.failed,
                                    "failed": self.failed - failed}, self.retry_failed)
        return store


def open_recorded(path: str | os.PathLike[str], fmt: str | None = None,
                  include_body: bool = False, retry_failed: bool = False,
                  options: Any = None, **shape: Any) -> RecordedRows:
    """What ``--resume -o PATH`` keeps: :class:`StoredRows` for a store (by ``fmt`` or
    PATH's suffix; ``options``, a FetchOptions, are recorded if it starts a run),
    :class:`~batchfetch.resume.RecordedRows` for a csv or jsonl file."""
    name = fmt or os.path.splitext(os.fspath(path))[1].lower()
    if name == "sqlite" or name in STORE_SUFFIXES:
        return StoredRows(path, include_body=include_body, retry_failed=retry_failed,
                          options=options, **shape)
    return RecordedRows(path, fmt, include_body, retry_failed, **shape)
