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
from collections.abc import Iterable, Sequence
from typing import Any

from ._version import __version__
from .errors import BatchFetchError, OutputError
from .results import COLUMNS, RECORD_TYPES, FetchResult

__all__ = ["RunStore", "StoreError", "STORE_SUFFIXES", "read_run", "write_rows"]

#: The suffixes of an output file that is a store (``-o runs.db``).
STORE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
#: A transaction commits after this many rows, or this many seconds, whichever first.
TRANSACTION_ROWS, TRANSACTION_SECONDS = 1000, 1.0
#: Seconds to wait for another connection's lock before the file counts as locked.
LOCK_WAIT = 2.0

_SQL_TYPES = {int: "INTEGER", float: "REAL", str: "TEXT", bool: "INTEGER"}
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


class StoreError(BatchFetchError, ValueError):
    """A store file that cannot be used as it is (not SQLite, corrupt, locked, tables of
    another shape); nothing was written to it."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path, self.problem = path, problem

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


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

    def commit(self) -> None:
        """Write the rows added since the last commit, in one transaction."""
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

    def _writing(self):
        return _Writing(self.path)


class _Writing:
    """Turns a failed write into OutputError (a full disk) or StoreError (the rest)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, _tb: Any) -> bool:
        if isinstance(exc, sqlite3.Error):
            if _is_full(exc) or (isinstance(exc, sqlite3.OperationalError)
                                 and "disk I/O error" in str(exc)):
                raise OutputError(self.path, OSError(28, str(exc))) from exc
            raise StoreError(self.path, str(exc)) from exc
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
        for name, wanted in (("runs", ("run", "started", "finished")), ("rows", ROW_COLUMNS)):
            if name in tables and not set(wanted) <= set(tables[name]):
                raise StoreError(path, f"its {name} table is not batchfetch's (columns "
                                       f"{', '.join(tables[name])})")
        if create:
            if connection.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
                raise StoreError(path, "SQLite cannot use WAL mode on it")
            for statement in SCHEMA:
                connection.execute(statement)
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
        if name == "id" and value is not None and not isinstance(value, (int, float, str)):
            value = json.dumps(value)
        values.append(value)
    values.append(json.dumps(row.headers) if row.headers is not None else None)
    values.append(row.body)
    return tuple(values)


def read_run(path: str | os.PathLike[str], run: int | None = None) -> list[FetchResult]:
    """The rows of run ``run`` of a store, in input order (by default the latest finished
    run); StoreError if there is none.

    Example: see :class:`RunStore`.
    """
    path = os.fspath(path)
    connection = _open(path, create=False)
    try:
        if run is None:
            found = connection.execute(
                "SELECT max(run) FROM runs WHERE finished IS NOT NULL").fetchone()[0]
            if found is None:
                raise StoreError(path, "it holds no finished run")
            run = found
        names = ", ".join(f'"{name}"' for name in COLUMNS)
        rows = [_row(values) for values in connection.execute(
            f'SELECT {names}, headers, body FROM rows WHERE run = ? ORDER BY "index"', (run,))]
    except sqlite3.DatabaseError as exc:
        raise StoreError(path, str(exc)) from None
    finally:
        connection.close()
    return rows


def _row(values: Sequence[Any]) -> FetchResult:
    fields = dict(zip(COLUMNS, values))
    fields["ok"] = bool(fields["ok"])
    for name, types in RECORD_TYPES.items():
        if name in fields and fields[name] is None and types[0] in (str, int, float) \
                and type(None) not in types and name != "status":
            fields[name] = types[0]()
    headers, body = values[len(COLUMNS)], values[len(COLUMNS) + 1]
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

