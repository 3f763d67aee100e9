"""The rows of an earlier run's output (``since``), indexed by what matches an input to
its row: its id, or its method, masked URL and request_hash.

A previous output is JSON Lines, CSV or a run store (its latest finished run). A small one
is indexed in dicts, a large one in a private temporary SQLite file, so a previous run of
a million rows costs disk, not memory. When several rows share a key, the last wins.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from typing import Any, NamedTuple

import gevent

from .errors import SinceError
from .writers import CsvReader, JsonLinesReader, read_id_cell

__all__ = ["PreviousRow", "PreviousRows", "id_key", "url_key"]

_VALUES = ("SELECT ok, status, final_url, etag, last_modified, sha256, by_url, "
           "content_type, path FROM rows WHERE ")
_BY_ID = _VALUES + "by_id = ? ORDER BY rowid DESC LIMIT 1"
_BY_URL = _VALUES + "by_url = ? ORDER BY rowid DESC LIMIT 1"
_BY_URL_WITHOUT_ID = _VALUES + "by_url = ? AND by_id IS NULL ORDER BY rowid DESC LIMIT 1"
#: The columns of a store's rows the index needs.
_STORED_COLUMNS = ("index", "id", "url", "method", "ok", "status", "final_url", "sha256", "etag",
                   "last_modified", "request_hash", "content_type", "path")
#: A previous output file of up to this many bytes is indexed in memory (10,000 rows of
#: JSON Lines take 5 MiB, and about 8 MiB in dicts), a larger one on disk: a lookup in a
#: dict takes a tenth of one in SQLite.
IN_MEMORY_BYTES = 8 * 1024 * 1024
#: Rows read (and JSON Lines parsed) at a time while the previous output is indexed.
_BATCH = 1000
_BOM = b"\xef\xbb\xbf"


class PreviousRow(NamedTuple):
    """What this run needs of a previous row: whether it was ok, its status, URLs,
    validators, body hash, and what a 304 carries forward (content type, saved file)."""

    ok: bool
    status: int | None = None
    final_url: str = ""
    etag: str = ""
    last_modified: str = ""
    sha256: str = ""
    #: Its :func:`url_key`: the request it answered.
    key: bytes = b""
    content_type: str = ""
    path: str = ""


def _id_text(value: Any) -> str | None:
    """An id as the index keys it: as a CSV file gives it back (which cannot tell 7 from
    "7", or "null" from no id), in text; None for no id. So an input's id and a previous
    row's match the same way whichever format PREV is."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        cell = "true" if value else "false"
    elif isinstance(value, (str, int, float)):
        cell = str(value)
    else:
        cell = json.dumps(value, ensure_ascii=False, default=str)
    back = read_id_cell(cell)
    if back is None or back == "":
        return None
    return back if isinstance(back, str) else json.dumps(back, ensure_ascii=False,
                                                         default=str)


def _key(*parts: str) -> bytes:
    """16 bytes of BLAKE2b of ``parts``: a key of the index, the same for a row and for
    the input that matches it."""
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"),
                           digest_size=16).digest()


def url_key(method: str, url: str, body_hash: str) -> bytes:
    """The key of a row, or an input, by its method, masked URL and request_hash."""
    return _key(method, url, body_hash)


def id_key(id_: Any) -> bytes | None:
    """The key of a row, or an input, by its id; None without one."""
    text = _id_text(id_)
    return None if text is None else _key("\x00id", text)


class PreviousRows:
    """The rows of an earlier run's output, indexed by their match keys: in dicts for a
    file of up to :data:`IN_MEMORY_BYTES`, else in a private temporary SQLite file
    (SQLite's own, deleted when closed), so a previous run of a million rows costs disk,
    not memory.

    ``path`` is JSON Lines or CSV (rows as batchfetch writes them; a cut last line, as a
    killed run leaves, is skipped) or a run store (its latest finished run). Raises
    :class:`SinceError` for a file it cannot read.

    Example::

        >>> from batchfetch import FetchResult, ResultTable
        >>> table = ResultTable([FetchResult(0, "http://127.0.0.1/a", ok=True, status=200,
        ...                                  etag='"v1"', sha256="ab")])
        >>> table.write("before.jsonl")
        >>> previous = PreviousRows("before.jsonl")
        >>> previous.find(None, "GET", "http://127.0.0.1/a", "").etag
        '"v1"'
        >>> previous.close()
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        #: Rows read from the file.
        self.count = 0
        self.empty_store = False  # a store with no finished run: every row is new
        self._db: sqlite3.Connection | None = None
        #: In memory: key -> row, by URL, by URL among the rows without an id, and by id.
        self._by_url: dict[bytes, PreviousRow] = {}
        self._by_url_without_id: dict[bytes, PreviousRow] = {}
        self._by_id: dict[bytes, PreviousRow] = {}
        try:
            self._index(self._records())
        except BaseException:
            self.close()
            raise

    def _records(self) -> Iterator[dict[str, Any]]:
        from .store import STORE_SUFFIXES, is_store  # sqlite3 store code only when needed

        if not os.path.exists(self.path):
            raise SinceError(self.path, "no such file")
        if not os.path.isfile(self.path):
            raise SinceError(self.path, "not a regular file")
        suffix = os.path.splitext(self.path)[1].lower()
        if suffix in STORE_SUFFIXES or is_store(self.path):
            return self._stored()
        try:
            with open(self.path, "rb") as stream:
                start = stream.read(64).removeprefix(_BOM).lstrip()[:1]
        except OSError as exc:
            raise SinceError(self.path, f"cannot read it: {exc.strerror or exc}") from None
        if start == b"[" or suffix == ".json":
            raise SinceError(self.path, "a JSON document (-f json) is read whole; give the "
                                        "JSON Lines (-o rows.jsonl), CSV or run store output")
        if suffix == ".csv" or (suffix not in (".jsonl", ".ndjson") and start not in b"{"):
            return self._read(CsvReader())
        return self._read(JsonLinesReader())

    def _read(self, reader: Any) -> Iterator[dict[str, Any]]:
        columns: tuple[str, ...] = ()
        batch: list[tuple[int, bytes]] = []
        with open(self.path, "rb") as stream:
            end = number = 0
            for number, end, raw in reader.records(stream):
                if number == 1:
                    raw = raw.removeprefix(_BOM)  # a file an editor saved
                if reader.header and number == 1:
                    try:
                        columns = reader.columns(raw)
                    except (ValueError, UnicodeDecodeError) as exc:
                        raise SinceError(self.path, f"line 1 is not a header: {exc}") from None
                    if not {"url", "ok"} <= set(columns):
                        raise SinceError(self.path, "line 1 has no url and ok columns: not "
                                                    "rows batchfetch wrote")
                elif raw.strip():
                    batch.append((number, raw))
                    if len(batch) >= _BATCH:
                        yield from self._parsed(reader, batch, columns)
                        batch = []
            yield from self._parsed(reader, batch, columns)
            stream.seek(end)
            last = stream.read()
        # A last row with no newline after it is whole if it reads as one; else it was cut
        # (a kill -9 mid-write) and is left out.
        if last.strip() and (columns or not reader.header):
            try:
                record = reader.record(last.removeprefix(_BOM), columns)
            except (ValueError, UnicodeDecodeError):
                return
            if _is_row(record):
                yield record

    def _parsed(self, reader: Any, batch: list[tuple[int, bytes]],
                columns: tuple[str, ...]) -> list[dict[str, Any]]:
        """The records of ``batch`` (line number, bytes), checked; SinceError names the
        first line that is not a row. JSON Lines are parsed as one JSON array, in half the
        time of a line at a time (a line that is not one object: one at a time)."""
        records: Any = None
        if isinstance(reader, JsonLinesReader) and batch:
            try:
                records = json.loads(b"[" + b",".join(raw for _, raw in batch) + b"]")
            except (ValueError, UnicodeDecodeError):
                pass  # a bad line: read one at a time, to say which
            if records is not None and len(records) != len(batch):
                records = None
        checked = []
        for position, (number, raw) in enumerate(batch):
            try:
                record = records[position] if records is not None \
                    else reader.record(raw, columns)
                if not _is_row(record):
                    raise ValueError("no url and ok: not a row batchfetch wrote")
            except (ValueError, UnicodeDecodeError) as exc:
                raise SinceError(self.path, f"line {number} is not a row: {exc}") from None
            checked.append(record)
        return checked

    def _stored(self) -> Iterator[dict[str, Any]]:
        from .store import StoreError, iter_records

        try:
            yield from iter_records(self.path, columns=_STORED_COLUMNS)
        except StoreError as exc:
            if exc.problem != "it holds no finished run":
                raise SinceError(self.path, exc.problem) from None
            self.empty_store = True

    def _index(self, records: Iterator[dict[str, Any]]) -> None:
        rows: list[tuple] = []
        on_disk = os.path.getsize(self.path) > IN_MEMORY_BYTES
        if on_disk:
            self._open_on_disk()
        for record in records:
            etag, modified = _validators(record)
            get = record.get
            rows.append((url_key(_text(get("method")) or "GET", record["url"],
                                 _text(get("request_hash"))),
                         id_key(get("id")), bool(get("ok")), get("status"),
                         _text(get("final_url")), etag, modified, _text(get("sha256")),
                         _text(get("content_type")), _text(get("path"))))
            if len(rows) % _BATCH == 0:
                gevent.sleep(0)  # a million rows take seconds: Ctrl-C and timers go on
                if on_disk:
                    self._add(rows)
                    rows = []
        if on_disk:
            self._add(rows)
            self._db.commit()
            # Sorted once at the end, not kept sorted row by row: a tenth of the time.
            self._db.executescript("CREATE INDEX rows_by_url ON rows (by_url);"
                                   "CREATE INDEX rows_by_id ON rows (by_id);")
            self._cursor = self._db.cursor()  # one for every lookup
            return
        for row in rows:  # in file order, so the last row of a key wins
            previous = PreviousRow(*row[2:8], row[0], *row[8:])
            self._by_url[row[0]] = previous
            if row[1] is None:
                self._by_url_without_id[row[0]] = previous
            else:
                self._by_id[row[1]] = previous
        self.count = len(rows)

    def _open_on_disk(self) -> None:
        self._db = sqlite3.connect("")  # a private temporary file, gone when closed
        self._db.executescript(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -2000;"
            "CREATE TABLE rows (by_url BLOB, by_id BLOB, ok INTEGER, status INTEGER, "
            "final_url TEXT, etag TEXT, last_modified TEXT, sha256 TEXT, "
            "content_type TEXT, path TEXT);")

    def _add(self, rows: list[tuple]) -> None:
        # In file order: the rowid says which of a key's rows came last. SQLite takes no
        # lone surrogate (a URL's undecodable byte, as Python keeps it): made U+FFFD.
        rows = [row if all(type(value) is not str or value.isascii() for value in row[4:])
                else row[:4] + tuple(_storable(value) for value in row[4:]) for row in rows]
        self._db.executemany("INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        self.count += len(rows)

    def find(self, id_: Any, method: str, url: str, body_hash: str) -> PreviousRow | None:
        """The previous row of an input: by ``id_`` when it has one and a previous row has
        it too, else by method, URL and ``body_hash`` (among the rows without an id when
        the input has one); None when there is none. Of several, the last."""
        return self.find_by_keys(id_key(id_), url_key(method, url, body_hash))

    def find_by_keys(self, by_id: bytes | None, by_url: bytes) -> PreviousRow | None:
        """:meth:`find` by the keys :func:`id_key` and :func:`url_key` give."""
        if self._db is None:
            if by_id is not None:
                return self._by_id.get(by_id) or self._by_url_without_id.get(by_url)
            return self._by_url.get(by_url)
        cursor = self._cursor
        if by_id is not None:
            found = cursor.execute(_BY_ID, (by_id,)).fetchone() \
                or cursor.execute(_BY_URL_WITHOUT_ID, (by_url,)).fetchone()
        else:
            found = cursor.execute(_BY_URL, (by_url,)).fetchone()
        return None if found is None else PreviousRow(bool(found[0]), *found[1:])

    def close(self) -> None:
        """Drop the index (and so its file)."""
        if self._db is not None:
            self._db.close()
        self._by_url = self._by_url_without_id = self._by_id = {}


def _is_row(record: Any) -> bool:
    """Whether a record read from PREV is a row: what every row has, a URL and ok."""
    return isinstance(record, dict) and isinstance(record.get("url"), str) and "ok" in record


def _text(value: Any) -> str:
    """A text column of a previous row: "" for none, a value of another type as text."""
    return value if type(value) is str else "" if value is None else str(value)


def _storable(value: Any) -> Any:
    """``value`` as SQLite can store it: a lone surrogate becomes U+FFFD."""
    if type(value) is not str:
        return value
    return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _validators(record: dict[str, Any]) -> tuple[str, str]:
    """A previous row's ETag and Last-Modified: its columns, else its headers (a file
    written before the columns, with ``--header-column`` or ``-i``)."""
    etag, modified = _text(record.get("etag")), _text(record.get("last_modified"))
    headers = record.get("headers")
    if isinstance(headers, str) and headers:  # a CSV cell holds the JSON text
        try:
            headers = json.loads(headers)
        except ValueError:
            headers = None
    if (not etag or not modified) and isinstance(headers, dict):
        by_name = {str(name).lower(): value for name, value in headers.items()}
        etag = etag or _one(by_name.get("etag"))
        modified = modified or _one(by_name.get("last-modified"))
    return etag, modified


def _one(value: Any) -> str:
    if isinstance(value, list):
        value = value[-1] if value else ""
    return value if isinstance(value, str) else ""
