"""Change detection across runs (``since``): an earlier run's rows, indexed on disk, and
what each row of this run changed against them.

An input is matched to the previous run's rows by ``id`` when both have one, else by
method, URL (masked, as rows carry it) and ``request_hash``; when the previous output
has several rows for one key, its last row wins. A matched input whose previous row was
ok and had an ETag or a Last-Modified is sent with If-None-Match or If-Modified-Since,
and a 304 to it is an ok row that carries the previous row's validators and ``sha256``
forward. Each row's ``change`` is one of :data:`CHANGES`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from typing import Any

from .config import FetchOptions
from .errors import InvalidItemError, SaveError, SinceError
from .inputs import RequestSpec, request_hash, to_spec
from .redaction import mask_url
from .results import CHANGE_ORDER, FetchResult
from .saving import settle

__all__ = ["CHANGES", "Changes", "PreviousRow", "PreviousRows", "SinceError", "change_of"]

log = logging.getLogger("batchfetch")

#: What a row's ``change`` may say, with ``since``.
NEW, SAME, CHANGED, MOVED, GONE, FAILED = "new", "same", "changed", "moved", "gone", "failed"
CHANGES = CHANGE_ORDER
#: The statuses that say a page that was there is gone.
GONE_STATUSES = frozenset({404, 410})
NOT_MODIFIED = 304
#: The columns of a store's rows the index needs.
_STORED_COLUMNS = ("index", "id", "url", "method", "ok", "status", "final_url", "sha256", "etag",
                   "last_modified", "request_hash")
#: Rows read from the previous output per transaction while it is indexed.
_BATCH = 5000
#: The validators a request may carry already (the caller's own win).
_CONDITIONAL = ("if-none-match", "if-modified-since", "if-match", "if-unmodified-since",
                "if-range")


@dataclasses.dataclass(frozen=True, slots=True)
class PreviousRow:
    """What this run needs of a previous row: whether it was ok, its status, final URL,
    validators and body hash."""

    ok: bool
    status: int | None = None
    final_url: str = ""
    etag: str = ""
    last_modified: str = ""
    sha256: str = ""


def _id_text(value: Any) -> str | None:
    """An id as the index keys it: a CSV file cannot tell 7 from "7", so neither does this."""
    if value is None or value == "":
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, default=str)


def _key(*parts: str) -> bytes:
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"),
                           digest_size=16).digest()


def match_keys(id_: Any, method: str, url: str, body_hash: str) -> tuple[bytes | None, bytes,
                                                                        bytes]:
    """``(by id, by URL among rows without an id, by URL among all rows)``: the keys a row
    (or an input) has in the index; the first is None without an id."""
    text = _id_text(id_)
    return (_key("id", text) if text is not None else None,
            _key("url", method, url, body_hash), _key("any", method, url, body_hash))


class PreviousRows:
    """The rows of an earlier run's output, indexed by their match keys in a private
    temporary SQLite file (SQLite's own, deleted when closed): a previous run of a
    million rows costs disk, not memory.

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
        self._db = sqlite3.connect("")  # a private temporary file, gone when closed
        self._db.executescript(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -2000;"
            "CREATE TABLE rows (ok INTEGER, status INTEGER, final_url TEXT, etag TEXT, "
            "last_modified TEXT, sha256 TEXT);"
            "CREATE TABLE keys (key BLOB PRIMARY KEY, row INTEGER) WITHOUT ROWID;")
        try:
            self._index(self._records())
        except BaseException:
            self._db.close()
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
        from .writers import CsvReader, JsonLinesReader

        with open(self.path, "rb") as stream:
            start = stream.read(1)
        if suffix == ".csv" or (suffix not in (".jsonl", ".ndjson") and start not in b"{"):
            return self._read(CsvReader())
        return self._read(JsonLinesReader())

    def _read(self, reader: Any) -> Iterator[dict[str, Any]]:
        columns: tuple[str, ...] = ()
        with open(self.path, "rb") as stream:
            for number, _end, raw in reader.records(stream):
                try:
                    if reader.header and number == 1:
                        columns = reader.columns(raw)
                        if "url" not in columns:
                            raise ValueError("no url column: not rows batchfetch wrote")
                        continue
                    if not raw.strip():
                        continue
                    record = reader.record(raw, columns)
                    if not isinstance(record.get("url"), str):
                        raise ValueError("no url")
                except (ValueError, UnicodeDecodeError) as exc:
                    raise SinceError(self.path, f"line {number} is not a row: {exc}") from None
                yield record

    def _stored(self) -> Iterator[dict[str, Any]]:
        from .store import StoreError, iter_run

        try:
            for row in iter_run(self.path, columns=_STORED_COLUMNS):
                yield {name: getattr(row, name) for name in _STORED_COLUMNS}
        except StoreError as exc:
            if exc.problem != "it holds no finished run":
                raise SinceError(self.path, exc.problem) from None
            self.empty_store = True

    def _index(self, records: Iterator[dict[str, Any]]) -> None:
        rows, keys = [], []
        insert_row = "INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?)"
        for record in records:
            etag, modified = _validators(record)
            rows.append((bool(record.get("ok")), record.get("status"),
                         record.get("final_url") or "", etag, modified,
                         record.get("sha256") or ""))
            keys.append(match_keys(record.get("id"), str(record.get("method") or "GET"),
                                   record["url"], record.get("request_hash") or ""))
            if len(rows) >= _BATCH:
                self._add(insert_row, rows, keys)
                rows, keys = [], []
        self._add(insert_row, rows, keys)
        self._db.commit()

    def _add(self, insert_row: str, rows: list[tuple], keys: list[tuple]) -> None:
        cursor = self._db.cursor()
        for values, (by_id, by_url, by_any) in zip(rows, keys):
            cursor.execute(insert_row, values)
            row = cursor.lastrowid
            # In file order, so the last row of a key wins.
            cursor.execute("INSERT OR REPLACE INTO keys VALUES (?, ?)", (by_any, row))
            cursor.execute("INSERT OR REPLACE INTO keys VALUES (?, ?)",
                           (by_id if by_id is not None else by_url, row))
        self.count += len(rows)

    def find(self, id_: Any, method: str, url: str, body_hash: str) -> PreviousRow | None:
        """The previous row of an input: by ``id_`` when it has one and a previous row has
        it too, else by method, URL and ``body_hash`` (among the rows without an id when
        the input has one); None when there is none."""
        by_id, by_url, by_any = match_keys(id_, method, url, body_hash)
        for key in ((by_id, by_url) if by_id is not None else (by_any,)):
            found = self._db.execute(
                "SELECT ok, status, final_url, etag, last_modified, sha256 FROM keys "
                "JOIN rows ON rows.rowid = keys.row WHERE key = ?", (key,)).fetchone()
            if found is not None:
                return PreviousRow(bool(found[0]), *found[1:])
        return None

    def close(self) -> None:
        """Close (and so delete) the index."""
        self._db.close()


def _validators(record: dict[str, Any]) -> tuple[str, str]:
    """A previous row's ETag and Last-Modified: its columns, else its headers (a file
    written before the columns, with ``--header-column`` or ``-i``)."""
    etag, modified = record.get("etag") or "", record.get("last_modified") or ""
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


def change_of(row: FetchResult, previous: PreviousRow | None,
              not_modified: bool = False) -> str:
    """What changed for ``row`` since ``previous``: the first of failed, new, gone, moved,
    changed and same that applies (``not_modified``: the server answered 304 to the
    previous row's validators).

    Example::

        >>> before = PreviousRow(ok=True, status=200, final_url="http://h/a", sha256="ab")
        >>> now = FetchResult(0, "http://h/a", ok=True, status=200, final_url="http://h/a",
        ...                   sha256="cd")
        >>> change_of(now, before), change_of(now, None), change_of(now, PreviousRow(False))
        ('changed', 'new', 'changed')
    """
    gone = previous is not None and previous.ok and row.status in GONE_STATUSES \
        and row.error in ("", "http")
    if not row.ok and not gone:
        return FAILED  # no answer that says anything about the page
    if previous is None:
        return NEW
    if gone:
        return GONE
    if previous.final_url and row.final_url and row.final_url != previous.final_url:
        return MOVED
    if not_modified:
        return SAME
    if not previous.ok or not previous.sha256 or row.sha256 != previous.sha256:
        return CHANGED
    return SAME


@dataclasses.dataclass(slots=True)
class _Sent:
    """An input on its way: the item as given, the item sent, and its previous row."""

    item: Any
    sent: Any
    previous: PreviousRow | None
    conditional: bool


class Changes:
    """The ``since`` of one run: :meth:`sending` adds validators to the inputs on their way
    to the engine, and :meth:`mark` gives each row its ``change`` (a 304 made ok and
    carrying the previous validators and hash, a held body kept or dropped with
    ``changed_only``) and the item as given. ``counts`` tallies the changes."""

    def __init__(self, options: FetchOptions) -> None:
        if options.since is None:
            raise ValueError("Changes needs options with since")
        self.options = options
        self.previous = PreviousRows(options.since)
        if self.previous.empty_store:
            log.warning("%s holds no finished run yet: every row is new", options.since)
        self._on_the_way: dict[int, list[_Sent]] = {}

    def sending(self, pairs: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
        """``pairs``, each item with If-None-Match / If-Modified-Since added when its
        previous row was ok and had the validator, and the caller's request names none."""
        for index, item in pairs:
            sent = self._looked_up(item)
            self._on_the_way.setdefault(index, []).append(sent)
            yield index, sent.sent

    def _looked_up(self, item: Any) -> _Sent:
        try:
            spec = to_spec(item, self.options)
        except InvalidItemError:
            return _Sent(item, item, None, False)  # its row is an error row: failed
        previous = self.previous.find(spec.id, spec.method, mask_url(spec.url),
                                      request_hash(spec))
        if previous is None or not previous.ok or not (previous.etag or previous.last_modified) \
                or any(name.lower() in _CONDITIONAL for name in spec.headers or ()):
            return _Sent(item, item, previous, False)
        validators = {}
        if previous.etag:
            validators["If-None-Match"] = previous.etag
        if previous.last_modified:
            validators["If-Modified-Since"] = previous.last_modified
        return _Sent(item, _with_headers(item, validators), previous, True)

    def mark(self, row: FetchResult, sent_item: Any = None) -> tuple[FetchResult, Any]:
        """``row`` with its ``change`` (and what a 304 carries forward), and the item as
        the caller gave it. ``sent_item`` says which of an index's repeats it answers."""
        waiting = self._on_the_way.get(row.index)
        if not waiting:
            return dataclasses.replace(row, change=FAILED), sent_item
        sent = next((entry for entry in waiting if entry.sent is sent_item), waiting[0])
        waiting.remove(sent)
        if not waiting:
            del self._on_the_way[row.index]
        previous = sent.previous
        not_modified = sent.conditional and row.status == NOT_MODIFIED \
            and row.error in ("", "http")
        if not_modified:
            row = dataclasses.replace(
                row, ok=True, error="", message="", sha256=previous.sha256,
                etag=row.etag or previous.etag,
                last_modified=row.last_modified or previous.last_modified)
        change = change_of(row, previous, not_modified)
        fields: dict[str, Any] = {"change": change}
        if self.options.changed_only and row.path.endswith(".part"):
            try:
                fields["path"] = settle(row.path, keep=change in (NEW, CHANGED))
            except SaveError as exc:
                fields.update(path="", ok=False, error="save", message=str(exc),
                              change=FAILED)
        return dataclasses.replace(row, **fields), sent.item


    def close(self) -> None:
        """Drop the previous run's index."""
        self.previous.close()


def _with_headers(item: Any, headers: dict[str, str]) -> Any:
    """``item`` (valid: a URL, a spec dict or a RequestSpec) with ``headers`` added."""
    if isinstance(item, str):
        return {"url": item, "headers": headers}
    if isinstance(item, RequestSpec):
        return dataclasses.replace(item, headers={**(item.headers or {}), **headers})
    return {**item, "headers": {**(item.get("headers") or {}), **headers}}
