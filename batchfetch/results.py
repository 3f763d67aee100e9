"""FetchResult (one row per input), its columns, and the summary of a run's rows."""
from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
import typing
from array import array
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from .kinds import ErrorKind
from .redaction import mask_passwords

__all__ = ["BodyNotKept", "FetchResult", "Summary", "SummaryCounter", "COLUMNS",
           "ADDED_COLUMNS", "BODY_COLUMNS", "HEADERS_COLUMN", "RECORD_TYPES",
           "grouped_headers", "header_column", "record_columns"]


@dataclasses.dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of one input item. A failure is a row too, never ``None``.

    ``status`` is None when no response arrived (never 0); ``error`` is the plain string
    value of an :class:`~batchfetch.ErrorKind` or ``""`` when ok; ``elapsed`` counts from the
    first attempt's start to the end, retry waits included; ``size`` is the number
    of decoded body bytes read; ``body`` is set only with ``keep_body=True``;
    ``path`` names the saved body file with ``save_dir`` (empty otherwise);
    ``waited`` is how long the item was held for politeness before its first attempt
    (a Retry-After, the host's lowered pace, a rate, a Crawl-delay, a new host's opening)
    and ``wait_reason`` the one that held it longest (:data:`batchfetch.scheduling.waits.REASONS`);
    ``throttled`` counts the 429 answers its attempts drew; ``sha256`` is the hex digest
    of the decoded body when the options ask for it (``hash_body``, ``--hash``; a SQLite
    output and ``since`` always do), else empty; ``etag`` and ``last_modified`` are the
    final response's validators (empty without); ``request_hash`` identifies what the
    request sends beyond its method and URL (params and body; empty for a plain GET), so
    that a later run can match its inputs to these rows; ``change`` says, with ``since``,
    what changed since the previous run (:data:`batchfetch.changes.CHANGES`), else empty.

    Example::

        >>> row = FetchResult(index=0, url="http://127.0.0.1/", ok=True, status=200)
        >>> row.ok, row.status, row.error
        (True, 200, '')
    """

    index: int
    url: str
    ok: bool = False
    status: int | None = None
    reason: str = ""
    elapsed: float = 0.0
    size: int = 0
    attempts: int = 0
    final_url: str = ""
    content_type: str = ""
    error: str = ""
    message: str = ""
    method: str = "GET"
    id: Any = None
    path: str = ""
    waited: float = 0.0
    wait_reason: str = ""
    throttled: int = 0
    sha256: str = ""
    etag: str = ""
    last_modified: str = ""
    request_hash: str = ""
    change: str = ""
    body: bytes | None = None
    headers: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # An ErrorKind is a str already; a row keeps the plain value, so its repr, pickles
        # and tables are the same whichever engine or user built it.
        if isinstance(self.error, ErrorKind):
            object.__setattr__(self, "error", self.error.value)

    @property
    def content(self) -> bytes:
        """The body (decoded, as ``requests.Response.content``); it is kept only with
        ``keep_body=True`` (``--body``): without, :class:`BodyNotKept` says so.

        Example::

            >>> row = FetchResult(0, "http://127.0.0.1/", ok=True, status=200,
            ...                   content_type="application/json; charset=utf-8",
            ...                   body=b'{"name": "ann"}')
            >>> row.content[:9], row.json()["name"], row.text[-6:]
            (b'{"name": ', 'ann', '"ann"}')
        """
        if self.body is None:
            raise BodyNotKept(self)
        return self.body

    @property
    def text(self) -> str:
        """The body as text, in the charset its Content-Type names, else UTF-8 (bytes that
        do not decode become U+FFFD)."""
        charset = _CHARSET.search(self.content_type)
        encoding = charset.group(1).strip("\"'") if charset else "utf-8"
        try:
            return self.content.decode(encoding, errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")

    def json(self, **kwargs: Any) -> Any:
        """The body parsed as JSON (``json.loads``' keywords pass through); raises
        ``json.JSONDecodeError`` (a ValueError) when it is not JSON."""
        return json.loads(self.content, **kwargs)

    def to_record(self, include_body: bool = False, *, headers: bool = False,
                  header_columns: Sequence[str] = ()) -> dict[str, Any]:
        """The row as a JSON-ready dict in :func:`record_columns` order.

        With ``include_body``, ``body`` is text when the body is UTF-8 and base64
        otherwise, and ``body_encoding`` says which (``"utf-8"`` or ``"base64"``). With
        ``headers``, ``headers`` is the response's headers (None without a response);
        each of ``header_columns`` is a column of its own (:func:`header_column`), the
        header's value, repeats joined with ", ".

        Example::

            >>> row = FetchResult(0, "http://127.0.0.1/", ok=True, status=200,
            ...                   headers={"X-Id": "v1", "Set-Cookie": ["a=1", "b=2"]})
            >>> record = row.to_record(headers=True, header_columns=["x-id", "Set-Cookie"])
            >>> record["headers"]["Set-Cookie"], record["x_id"], record["set_cookie"]
            (['a=1', 'b=2'], 'v1', 'a=1, b=2')
        """
        record = {name: getattr(self, name) for name in COLUMNS}
        record["elapsed"] = round(self.elapsed, 6)
        record["waited"] = round(self.waited, 6)
        if headers:
            record["headers"] = self.headers
        if header_columns:
            by_name = {name.lower(): value for name, value in (self.headers or {}).items()}
            for name in header_columns:
                value = by_name.get(name.lower())
                record[header_column(name)] = ", ".join(value) if isinstance(value, list) \
                    else value
        if include_body:
            record["body"], record["body_encoding"] = _encode_body(self.body)
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any],
                    header_columns: Sequence[str] = ()) -> "FetchResult":
        """The row :meth:`to_record` gave ``record``: the body decoded by its
        ``body_encoding`` (``utf-8`` text or ``base64``), and ``None`` without one.

        ``index``, ``url`` and ``ok`` must be there; a column that is not (the
        :data:`ADDED_COLUMNS` of a file written before them, an empty CSV cell) takes its
        default, and a key that is no column is ignored. ``header_columns`` (the run's)
        puts the values of those columns back in ``headers`` when the record has none.

        Raises ``ValueError`` naming the column: one of those three missing, a value of
        the wrong type (:data:`RECORD_TYPES`), a body that does not decode.

        Example::

            >>> row = FetchResult(3, "http://127.0.0.1/", ok=True, status=200, body=b"\\xff")
            >>> FetchResult.from_record(row.to_record(include_body=True)) == row
            True
            >>> older = FetchResult.from_record({"index": 0, "url": "http://127.0.0.1/",
            ...                                  "ok": False, "status": 503})
            >>> older.status, older.waited, older.body
            (503, 0.0, None)
        """
        missing = [name for name in _REQUIRED if name not in record]
        if missing:
            raise ValueError(f"no {' or '.join(missing)} column")
        values = {name: record[name] for name in COLUMNS if name in record}
        for name, value in values.items():
            exact = _EXACT_TYPES[name]  # a set lookup first: resume reads millions of rows
            if exact and type(value) not in exact and not _is_a(value, RECORD_TYPES[name]):
                raise ValueError(f"{name} is {value!r}, not {_type_names(name)}")
        if "body_encoding" in record or "body" in record:
            values["body"] = _decode_body(record.get("body"), record.get("body_encoding"))
        headers = record.get("headers")
        if isinstance(headers, str) and headers:  # a CSV cell holds the JSON text
            headers = json.loads(headers)
        if not isinstance(headers, dict) and header_columns:  # the picked ones, back
            headers = {name: record[header_column(name)] for name in header_columns
                       if record.get(header_column(name)) not in (None, "")}
        if isinstance(headers, dict):
            values["headers"] = headers
        return cls(**values)


#: The charset parameter of a Content-Type.
_CHARSET = re.compile(r";\s*charset\s*=\s*([^;\s]+)", re.IGNORECASE)


class BodyNotKept(ValueError):
    """A row's body was asked for, and the run did not keep it."""

    def __init__(self, row: FetchResult) -> None:
        super().__init__(f"row {row.index} ({row.url}) has no body: a run keeps the bodies "
                         "of the responses it reads whole with keep_body=True (--body on the "
                         "command line); save_dir writes them to files (row.path) instead")


#: Output columns, in order (``body`` and ``body_encoding`` follow with keep_body).
COLUMNS = ("index", "id", "url", "method", "ok", "status", "reason", "elapsed", "size",
           "attempts", "final_url", "content_type", "error", "message", "path", "waited",
           "wait_reason", "throttled", "sha256", "etag", "last_modified", "request_hash",
           "change")
#: The columns added since the first release, last, in the order they came: a CSV file
#: written before some of them (the columns without a tail of these) can still be
#: resumed, in its own columns.
ADDED_COLUMNS = ("waited", "wait_reason", "throttled", "sha256", "etag", "last_modified",
                 "request_hash", "change")
#: The columns of the response's validators, which ``header_columns`` need not pick.
VALIDATOR_COLUMNS = ("etag", "last_modified")
#: The columns after :data:`COLUMNS` when bodies are kept.
BODY_COLUMNS = ("body", "body_encoding")
#: The column of a row's response headers (``response_headers``).
HEADERS_COLUMN = ("headers",)
#: Every column a row may have but those of ``header_columns``.
ROW_COLUMNS = frozenset(COLUMNS + BODY_COLUMNS + HEADERS_COLUMN)


def _record_types() -> dict[str, tuple[type, ...]]:
    hints = typing.get_type_hints(FetchResult)
    types = {name: {Any: (object,), float: (float, int)}.get(hints[name])
             or typing.get_args(hints[name]) or (hints[name],) for name in COLUMNS}
    return types | dict.fromkeys(BODY_COLUMNS, (str, type(None)))


#: What a record may hold in each column (``type(None)``: may be empty), read from the
#: types of FetchResult's fields, so a column is declared once; a record's body is text.
RECORD_TYPES: dict[str, tuple[type, ...]] = _record_types()
#: The same as sets of exact types (empty for a column that takes anything).
_EXACT_TYPES = {name: frozenset(types) - {object} for name, types in RECORD_TYPES.items()}
#: The columns a record cannot do without: which input, its URL, and whether it was ok.
_REQUIRED = ("index", "url", "ok")


def record_columns(include_body: bool = False, *, headers: bool = False,
                   header_columns: Sequence[str] = ()) -> tuple[str, ...]:
    """A record's columns: :data:`COLUMNS`, ``headers`` with ``headers``, one per header
    of ``header_columns``, then :data:`BODY_COLUMNS` with ``include_body``."""
    return (COLUMNS + (HEADERS_COLUMN if headers else ())
            + tuple(header_column(name) for name in header_columns)
            + (BODY_COLUMNS if include_body else ()))


def header_column(name: str) -> str:
    """The column a header picked with ``header_columns`` gets: its name in lower case,
    ``-`` as ``_``.

    Example::

        >>> header_column("ETag"), header_column("Last-Modified")
        ('etag', 'last_modified')
    """
    return name.strip().lower().replace("-", "_")


def grouped_headers(items: Iterable[tuple[str, str]],
                    only: Collection[str] | None = None) -> dict[str, Any]:
    """Header lines as a row keeps them: name (as first sent) -> value, or a list of values
    for a repeated header; with ``only`` (lower-case names), those headers alone. URL
    passwords in values are masked, as everywhere in rows.

    Example::

        >>> grouped_headers([("Set-Cookie", "a=1"), ("ETag", "x"), ("set-cookie", "b=2")])
        {'Set-Cookie': ['a=1', 'b=2'], 'ETag': 'x'}
    """
    grouped: dict[str, Any] = {}
    names: dict[str, str] = {}
    for name, value in items:
        lower = name.lower()
        if only is not None and lower not in only:
            continue
        key = names.setdefault(lower, name)
        value = mask_passwords(value)
        if key not in grouped:
            grouped[key] = value
        elif isinstance(grouped[key], list):
            grouped[key].append(value)
        else:
            grouped[key] = [grouped[key], value]
    return grouped


def _is_a(value: Any, types: tuple[type, ...]) -> bool:
    # bool is an int to isinstance, but a status of True is not a row's
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))


def _type_names(name: str) -> str:
    return " or ".join("None" if kind is type(None) else kind.__name__
                       for kind in RECORD_TYPES[name])


def _encode_body(body: bytes | None) -> tuple[str | None, str | None]:
    if body is None:
        return None, None
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


def _decode_body(text: Any, encoding: Any) -> bytes | None:
    """The bytes :func:`_encode_body` gave ``(text, encoding)``; an empty cell is no text."""
    if text is not None and not isinstance(text, str):
        raise ValueError(f"body is {type(text).__name__}, not str")
    if encoding is None:
        if text:
            raise ValueError("a body without a body_encoding")
        return None
    if encoding == "utf-8":
        return (text or "").encode("utf-8")
    if encoding == "base64":
        return base64.b64decode(text or "", validate=True)
    raise ValueError(f"body_encoding is {encoding!r}, not utf-8 or base64")


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


#: The order a summary counts the changes in (batchfetch.changes.CHANGES).
CHANGE_ORDER = ("new", "same", "changed", "moved", "gone", "failed")
#: Hosts named in a summary's "polite:" lines, at most.
MAX_POLITE_LINES = 5
#: Hosts counted one by one for them; the rest are counted together as OTHER_HOSTS.
MAX_POLITE_HOSTS = 1000
OTHER_HOSTS = "other hosts"
#: Waits shorter than this in all (a new host's opening) are not worth a line.
_NOTABLE_WAIT = 0.05


@dataclasses.dataclass
class HostWaits:
    """What one host cost a run in politeness: 429s drawn, rows held, seconds by reason."""

    throttled: int = 0
    rows: int = 0
    seconds: float = 0.0
    by_reason: Counter = dataclasses.field(default_factory=Counter)

    def __str__(self) -> str:
        parts = [f"429 x {self.throttled}"] if self.throttled else []
        if self.seconds >= _NOTABLE_WAIT:
            reasons = ", ".join(f"{reason} {seconds / self.seconds:.0%}"
                                for reason, seconds in self.by_reason.most_common()
                                if seconds >= self.seconds / 100)
            parts.append(f"{self.rows} rows waited for it, {self.seconds / self.rows:.2f} s "
                         f"each on average ({reasons})")
        return "; ".join(parts)


def _host_of(url: str) -> str:
    """``host:port`` of a row's URL (its password is masked already), or the URL."""
    rest = url.partition("://")[2]
    return rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2] or url


@dataclasses.dataclass(frozen=True)
class Summary:
    """Counts and latencies of a run; ``str()`` gives a few readable lines.

    Example::

        >>> rows = [FetchResult(0, "http://127.0.0.1/", ok=True, status=200, attempts=1,
        ...                     elapsed=0.25)]
        >>> print(Summary.of(rows, wall_time=0.5))   # or table.summary()
        1 fetched: 1 ok, 0 failed, 0 retries
        status: 200: 1
        errors: -
        latency: p50 250 ms, p90 250 ms, p99 250 ms
        time: 0.50 s, 2.0 req/s
    """

    total: int
    ok: int
    failed: int
    by_status: dict[str, int]
    by_error: dict[str, int]
    retries: int
    latency_p50: float | None
    latency_p90: float | None
    latency_p99: float | None
    wall_time: float | None
    requests_per_second: float | None
    #: Hosts that answered 429 or held rows back for politeness: host -> HostWaits.
    polite: dict[str, "HostWaits"] = dataclasses.field(default_factory=dict)
    #: With ``since``: rows by their ``change`` (new, same, changed, moved, gone, failed).
    by_change: dict[str, int] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, rows: Iterable[FetchResult], wall_time: float | None = None) -> "Summary":
        """Summarise ``rows``; ``wall_time`` (seconds) gives the throughput."""
        counter = SummaryCounter()
        for row in rows:
            counter.add(row)
        return counter.summary(wall_time)

    def __repr__(self) -> str:  # a REPL shows table.summary() as print() does
        return str(self)

    def __str__(self) -> str:
        def counts(mapping: dict[str, int]) -> str:
            return ", ".join(f"{key}: {value}" for key, value in mapping.items()) or "-"

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value * 1000:.0f} ms"

        lines = [f"{self.total} fetched: {self.ok} ok, {self.failed} failed, "
                 f"{self.retries} retries",
                 f"status: {counts(self.by_status)}",
                 f"errors: {counts(self.by_error)}",
                 f"latency: p50 {ms(self.latency_p50)}, p90 {ms(self.latency_p90)}, "
                 f"p99 {ms(self.latency_p99)}"]
        if self.by_change:
            lines.append(f"changes: {counts(self.by_change)}")
        if self.wall_time is not None:
            rate = self.requests_per_second or 0.0
            lines.append(f"time: {self.wall_time:.2f} s, {rate:.1f} req/s")
        shown = sorted(self.polite.items(), key=lambda item: (-item[1].throttled,
                                                              -item[1].seconds))
        for host, waits in shown[:MAX_POLITE_LINES]:
            lines.append(f"polite: {host}: {waits}")
        if len(shown) > MAX_POLITE_LINES:
            lines.append(f"polite: and {len(shown) - MAX_POLITE_LINES} more hosts")
        return "\n".join(lines)


class SummaryCounter:
    """What a :class:`Summary` needs, counted row by row without keeping the rows (counts
    and one float per row), for summaries of streamed runs of any length.

    Example::

        >>> counter = SummaryCounter()
        >>> counter.add(FetchResult(0, "http://127.0.0.1/", ok=True, status=200, attempts=2))
        >>> summary = counter.summary(wall_time=0.5)
        >>> summary.ok, summary.retries, summary.requests_per_second
        (1, 1, 2.0)
    """

    def __init__(self) -> None:
        self.total = self.ok = self.retries = 0
        self.by_status: Counter[str] = Counter()
        self.by_error: Counter[str] = Counter()
        self.latencies = array("d")
        self.polite: dict[str, HostWaits] = {}
        self.by_change: Counter[str] = Counter()

    def add(self, row: FetchResult) -> None:
        """Count one row."""
        self.total += 1
        if row.change:
            self.by_change[row.change] += 1
        self.ok += row.ok
        self.by_status["none" if row.status is None else str(row.status)] += 1
        if row.error:
            self.by_error[row.error] += 1
        if row.attempts:
            self.latencies.append(row.elapsed)
            self.retries += row.attempts - 1
        if row.throttled or row.waited:
            host = _host_of(row.url)
            waits = self.polite.get(host)
            if waits is None:
                if len(self.polite) >= MAX_POLITE_HOSTS:  # a crawl of millions: bounded
                    host = OTHER_HOSTS
                    waits = self.polite.get(host)
                if waits is None:
                    waits = self.polite[host] = HostWaits()
            waits.throttled += row.throttled
            if row.waited:
                waits.rows += 1
                waits.seconds += row.waited
                waits.by_reason[row.wait_reason] += row.waited

    def summary(self, wall_time: float | None = None) -> Summary:
        """The Summary of the rows added; ``wall_time`` (seconds) gives the throughput."""
        timed = sorted(self.latencies)
        p50, p90, p99 = ((_percentile(timed, f) if timed else None) for f in (0.5, 0.9, 0.99))
        return Summary(
            total=self.total, ok=self.ok, failed=self.total - self.ok,
            by_status=dict(sorted(self.by_status.items())),
            by_error=dict(sorted(self.by_error.items())), retries=self.retries,
            latency_p50=p50, latency_p90=p90, latency_p99=p99, wall_time=wall_time,
            requests_per_second=(self.total / wall_time) if wall_time else None,
            polite={host: waits for host, waits in self.polite.items()
                    if waits.throttled or waits.seconds >= _NOTABLE_WAIT},
            by_change={change: self.by_change[change] for change in CHANGE_ORDER
                       if change in self.by_change})
