"""FetchOptions: the one frozen, validated value object behind every fetch.

The CLI and the Python API build the same object; every default lives here, or in the
option families of :mod:`batchfetch.policies` that FetchOptions groups its fields into.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Mapping
from typing import Any, Union

from requests.auth import AuthBase

from ._checks import (broker_problem, existing_path, integer, number, parse_status_set,
                      proxy_problem, status_ranges, string_mapping)
from ._options_json import keywords_from_dict, options_to_dict
from ._version import __version__
from .errors import OptionError
from .headers import form_problem, header_problem, is_latin1, multipart_parts
from .host_rules import HostRules, HostsValue
from .methods import normalize_method
from .policies import DEFAULT_RETRY_ON, Limits, RetryPolicy, Timeouts, flat_keywords
from .redaction import shown_option
from .results import ROW_COLUMNS, VALIDATOR_COLUMNS, header_column

__all__ = ["FetchOptions", "parse_status_set", "DEFAULT_OK_STATUS", "DEFAULT_RETRY_ON",
           "KEPT_BODY_LIMIT"]

#: Statuses that count as ok unless ``ok_status`` says otherwise: 1xx to 3xx.
DEFAULT_OK_STATUS = frozenset(range(100, 400))
#: The cap on a kept body while ``max_bytes`` is ``"auto"`` (the default): larger than nearly
#: every API response or web page, small enough that the default 16 requests in flight hold
#: at most 160 MiB of bodies being read, whatever a server (or a gzip bomb) sends.
KEPT_BODY_LIMIT = 10 * 1024 * 1024
#: Requests in flight per host with ``polite=True`` unless ``per_host`` is given: what a
#: browser opens to one site is six; a crawler that is a guest takes fewer.
POLITE_PER_HOST = 4

Timeout = Union[float, int, None, tuple]


@dataclasses.dataclass(frozen=True)
class FetchOptions:
    """How a batch is fetched. Validated when created; every field has a default.

    A bad value raises :class:`~batchfetch.errors.OptionError` (a ``ValueError``)
    naming the option and the value. The same fields are keywords of
    :func:`batchfetch.fetch_all` and ``--flags`` of the CLI.

    The fields fall into families, each also a small value object of
    :mod:`batchfetch.policies`: ``options.timeouts`` (:class:`Timeouts`),
    ``options.retry_policy`` (:class:`RetryPolicy`) and ``options.limits``
    (:class:`Limits`) are built from the fields, and the same names are keywords here and
    in :meth:`replace` standing for their fields (give a family or its fields, not both).
    :meth:`to_dict` and :meth:`from_dict` carry the options as JSON.

    Example::

        >>> options = FetchOptions(concurrency=50, timeout=(3, 20), retries=2)
        >>> options.timeout
        (3.0, 20.0)
        >>> options.limits
        Limits(concurrency=50, per_host=None, rate=None, max_pending=None)
        >>> FetchOptions(limits=Limits(concurrency=8, rate=2)).concurrency
        8
    """

    # Flat fields, not one field per family: every keyword, ``--flag`` and
    # ``BATCHFETCH_<NAME>`` maps to one field, and the CLI reads its defaults from them.
    # A family field's default is the family's own (one place).

    #: Requests in flight at once, across all hosts.
    concurrency: int = Limits.concurrency
    #: Seconds: a number for both connect and read, or a ``(connect, read)`` pair.
    #: ``None`` in either place waits forever (the deadline still applies).
    timeout: Timeout = (Timeouts.connect, Timeouts.read)
    #: Overrides the connect part of ``timeout`` when set.
    connect_timeout: float | None = None
    #: Method for items that do not name one.
    method: str = "GET"
    #: Headers for every request; an item's own headers win.
    headers: Mapping[str, str] | None = None
    #: Query parameters for every request; an item's own params win.
    params: Mapping[str, Any] | None = None
    #: Body for every request (form dict, str or bytes); an item's body replaces it.
    data: Any = None
    #: JSON body for every request; an item's body replaces it.
    json: Any = None
    #: Multipart parts for every request (curl's ``-F``): name -> text, or ``{"path": FILE}``
    #: with optional ``"type"`` and ``"filename"`` for a file; an item's body replaces them.
    files: Mapping[str, Any] | None = None
    #: ``(user, password)`` for basic auth, or a ``requests.auth.AuthBase``.
    auth: Any = None
    #: Cookies sent with every request; cookies a response sets are never shared.
    cookies: Mapping[str, str] | None = None
    #: True (verify against the CA bundle), False, or the path of a CA bundle.
    verify: bool | str = True
    #: Client certificate: a path, or a ``(cert, key)`` pair of paths.
    cert: str | tuple[str, str] | None = None
    #: Proxies by scheme, as requests takes them; None uses the environment, {} no proxy.
    proxies: Mapping[str, str] | None = None
    #: Follow redirects.
    allow_redirects: bool = True
    #: Redirects followed before the row fails with ``too_many_redirects``.
    max_redirects: int = 30
    #: User-Agent header unless a headers option sets one.
    user_agent: str = f"batchfetch/{__version__}"
    #: Statuses that make a row ok: ``"200-299,404"``, a set, a range. Default 100-399.
    ok_status: Any = DEFAULT_OK_STATUS
    #: Keep each response body (bytes) on its row.
    keep_body: bool = False
    #: Put the hex SHA-256 of each decoded body in the row's ``sha256`` (computed as it
    #: streams; about 0.8 s of CPU per GiB). A SQLite output (``-o runs.db``) turns it on.
    hash_body: bool = False
    #: Keep the final response's headers on each row (``headers``: name -> value, a list
    #: of values for a repeated header such as Set-Cookie).
    response_headers: bool = False
    #: Headers picked into columns of their own, named as :func:`header_column` names them
    #: (``X-Request-Id`` -> ``x_request_id``); a header the response lacks is empty (None).
    #: ETag and Last-Modified need no picking: every row has ``etag`` and ``last_modified``.
    header_columns: tuple[str, ...] = ()
    #: Directory to stream each body into (created if missing); the row's ``path`` names
    #: the file. None: bodies are not saved.
    save_dir: str | None = None
    #: An earlier run's output (JSON Lines, CSV or a run store: its latest finished run) to
    #: compare this run with: inputs are matched to its rows, sent with If-None-Match or
    #: If-Modified-Since when their row has an ETag or a Last-Modified, and each row's
    #: ``change`` says what changed (:mod:`batchfetch.changes`). Turns hash_body on.
    since: str | None = None
    #: With since: save_dir keeps the bodies of ``new`` and ``changed`` rows only (and the
    #: command's CSV or JSON Lines output leaves ``same`` rows out).
    changed_only: bool = False
    #: Extra attempts after the first for retryable failures.
    retries: int = RetryPolicy.retries
    #: Base of the exponential backoff in seconds (with jitter, capped at max_retry_wait).
    backoff: float = RetryPolicy.backoff
    #: Statuses that are retried.
    retry_on: Any = DEFAULT_RETRY_ON
    #: Longest wait honoured for Retry-After (and the cap of the backoff), in seconds; also
    #: the most one row waits in all for its throttled retries.
    max_retry_wait: float = RetryPolicy.max_retry_wait
    #: Extra attempts after 429 answers, which do not count against ``retries``: the run
    #: slows down for the host instead (see "Being polite" in the README).
    throttled_retries: int = RetryPolicy.throttled_retries
    #: Retry POST/PATCH on timeouts, resets after sending and retryable statuses too.
    retry_non_idempotent: bool = RetryPolicy.retry_non_idempotent
    #: Wall-clock seconds one attempt may take, from its start to the end of the body.
    deadline: float | None = Timeouts.deadline
    #: Largest decoded body in bytes; larger ones fail with ``too_large``. ``"auto"``:
    #: KEPT_BODY_LIMIT (10 MiB) when bodies are kept, no cap when they are only counted or
    #: saved (memory stays flat). None: no cap, kept bodies included.
    max_bytes: int | str | None = "auto"
    #: Requests in flight at once per host (scheme, name, port). None: only concurrency.
    per_host: int | None = Limits.per_host
    #: Attempts started per second across the run, retries included. None: no limit.
    rate: float | None = Limits.rate
    #: Send what can go out identically on the native transport (the same bytes, rows and
    #: errors as requests' path, less CPU); False sends every request through requests'
    #: full Session path.
    fast_path: bool = True
    #: Fetch each origin's robots.txt before its first request (RFC 9309), skip the URLs it
    #: disallows for the User-Agent sent (rows with error ``robots``), and space the
    #: host's starts by its Crawl-delay or Request-rate.
    robots: bool = False
    #: Find each host's requests in flight from its latency (TCP Vegas): a host whose
    #: answers slow down well past their unloaded latency gets fewer. Off: only overload
    #: signals (429, 503, timeouts) lower a host's pace.
    adaptive: bool = False
    #: A preset for crawling sites that are not yours: robots and adaptive on, and
    #: per_host 4 unless per_host is given (see ``follows_robots``, ``adapts``,
    #: ``host_limit``; the fields themselves keep what was given).
    polite: bool = False
    #: Processes that may share the batch: this one, and up to ``workers - 1`` worker
    #: processes (each with its own hub, pool and session) started while it is CPU-bound;
    #: concurrency, per_host, rate and max_pending are divided between them.
    workers: int = 1
    #: Items pulled from the input but not yet yielded (the look-ahead window in which
    #: per-host fairness holds). None: 4 x concurrency, at least 256.
    max_pending: int | None = Limits.max_pending
    #: The Redis broker (``redis://HOST:6379/0``, ``rediss://`` for TLS) of a distributed
    #: run: ``batchfetch-worker`` processes on any number of machines fetch the batch in
    #: chunks (see "More than one machine" in the README). None: this machine only.
    broker: str | None = None
    #: Items per chunk of a distributed run.
    chunk_size: int = 200
    #: Seconds a distributed worker's hold on a chunk lasts unless renewed (every third of
    #: it): a chunk whose worker died is sent again this long after its last renewal.
    lease: float = 30.0
    #: Seconds one chunk of a distributed run may take on its worker; the inputs it has not
    #: answered by then get ``lost`` rows.
    chunk_time_limit: float = 1800.0
    #: Settings by host pattern (concurrency, rate, retries, timeouts, headers, auth, proxy):
    #: the path of a TOML file, a mapping of the same shape, or HostRules; read and checked
    #: here, once (see :mod:`batchfetch.host_rules`). None: the run's settings everywhere.
    hosts: HostsValue | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalised values are set once, here
        # The families check (and normalise) their own fields.
        for family in (self.limits, self.retry_policy):
            for field in dataclasses.fields(family):
                set_(self, field.name, getattr(family, field.name))
        set_(self, "connect_timeout", number("connect_timeout", self.connect_timeout,
                                             allow_none=True))
        set_(self, "timeout", self._normalized_timeout())
        set_(self, "deadline", number("deadline", self.deadline, allow_none=True))
        try:
            set_(self, "method", normalize_method(self.method))
        except ValueError as exc:
            raise OptionError("method", self.method, str(exc)) from None
        for name in ("headers", "cookies"):
            set_(self, name, string_mapping(name, getattr(self, name)))
        if self.proxies is not None:  # None: the environment's; {}: no proxy at all
            set_(self, "proxies", string_mapping("proxies", self.proxies))
            problem = proxy_problem(self.proxies)
            if problem:
                raise OptionError("proxies", self.proxies, "proxy URLs", problem)
        if self.params is not None and not isinstance(self.params, (Mapping, list, tuple)):
            raise OptionError("params", self.params, "a mapping or a list of pairs")
        if self.data is not None and self.json is not None:
            raise OptionError("data", self.data, "unset when json is set (one body only)")
        problem = form_problem(self.data)
        if problem:
            raise OptionError("data", self.data, "a string, bytes or form fields", problem)
        if self.files is not None:
            if self.json is not None:
                raise OptionError("files", self.files, "unset when json is set (one body only)")
            if isinstance(self.data, (str, bytes)):
                raise OptionError("files", self.files, "parts beside form fields, not a "
                                  "string body", "data must be form fields with files")
            try:
                # Read once, here: every request shares these bytes.
                set_(self, "_multipart", multipart_parts(self.files))
            except ValueError as exc:
                raise OptionError("files", self.files, "multipart parts", str(exc)) from None
            set_(self, "files", dict(self.files))
        if self.auth is not None and not isinstance(self.auth, AuthBase) and not (
                isinstance(self.auth, tuple) and len(self.auth) == 2
                and all(isinstance(part, str) for part in self.auth)):
            raise OptionError("auth", self.auth, "a (user, password) pair or a requests AuthBase")
        if isinstance(self.auth, tuple) and not all(map(is_latin1, self.auth)):
            raise OptionError("auth", self.auth, "Latin-1 text", "the user or the password has "
                              "a character outside Latin-1, which basic auth cannot send")
        if not isinstance(self.verify, bool):
            set_(self, "verify", existing_path("verify", self.verify))
        if self.cert is not None:
            paths = self.cert if isinstance(self.cert, tuple) else (self.cert,)
            if len(paths) not in (1, 2):
                raise OptionError("cert", self.cert, "a path or a (cert, key) pair of paths")
            set_(self, "cert", tuple(existing_path("cert", p) for p in paths)
                 if len(paths) == 2 else existing_path("cert", paths[0]))
        if self.save_dir is not None:
            if not isinstance(self.save_dir, (str, os.PathLike)) or not os.fspath(
                    self.save_dir) or (os.path.exists(self.save_dir)
                                       and not os.path.isdir(self.save_dir)):
                raise OptionError("save_dir", self.save_dir, "the path of a directory")
            set_(self, "save_dir", os.fspath(self.save_dir))
        set_(self, "header_columns", _header_columns(self.header_columns))
        for name in ("allow_redirects", "keep_body", "response_headers", "fast_path", "robots",
                     "adaptive", "polite", "hash_body", "changed_only"):
            if not isinstance(getattr(self, name), bool):
                raise OptionError(name, getattr(self, name), "True or False")
        self._check_since()

        set_(self, "max_redirects", integer("max_redirects", self.max_redirects, minimum=0))
        if not isinstance(self.user_agent, str):
            raise OptionError("user_agent", self.user_agent, "a string")
        problem = header_problem("User-Agent", self.user_agent)
        if problem:
            raise OptionError("user_agent", self.user_agent, "a valid header value", problem)
        set_(self, "ok_status", parse_status_set(self.ok_status, "ok_status"))
        if self.max_bytes not in ("auto", None) and (
                isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int)
                or self.max_bytes < 0):
            raise OptionError("max_bytes", self.max_bytes, "an integer >= 0, 'auto' or None")
        set_(self, "workers", integer("workers", self.workers, minimum=1))
        self._check_distribution()
        if self.hosts is not None:
            set_(self, "hosts", HostRules.coerce(self.hosts))

    def _check_since(self) -> None:
        set_ = object.__setattr__
        if self.since is not None:
            if not isinstance(self.since, (str, os.PathLike)) or not os.fspath(self.since) \
                    or os.path.isdir(self.since):
                raise OptionError("since", self.since, "the path of an earlier run's output "
                                  "(JSON Lines, CSV or a run store)")
            set_(self, "since", os.fspath(self.since))
            set_(self, "hash_body", True)  # rows are compared by their bodies' hashes
        elif self.changed_only:
            raise OptionError("changed_only", self.changed_only, "False without since",
                              "changed_only needs since: which rows changed is told against "
                              "an earlier run's output")

    def _check_distribution(self) -> None:
        set_ = object.__setattr__
        set_(self, "chunk_size", integer("chunk_size", self.chunk_size, minimum=1))
        set_(self, "lease", number("lease", self.lease, minimum=0.5, strictly_positive=False))
        set_(self, "chunk_time_limit", number("chunk_time_limit", self.chunk_time_limit))
        if self.broker is None:
            return
        problem = broker_problem(self.broker)
        if problem:
            raise OptionError("broker", self.broker, "a Redis URL", problem)
        if self.workers > 1:
            raise OptionError("workers", self.workers, "1 with broker", "workers and broker "
                              "are two ways of running a batch: give one (with a broker, "
                              "start one batchfetch-worker per core instead)")
        if self.keep_body and (self.body_limit is None or self.body_limit > KEPT_BODY_LIMIT):
            raise OptionError("max_bytes", self.max_bytes, "at most 10 MiB with broker and "
                              "keep_body", "kept bodies travel through Redis with a broker: "
                              f"max_bytes must be at most {KEPT_BODY_LIMIT} (10 MiB)")
        if isinstance(self.auth, AuthBase):
            raise OptionError("auth", self.auth, "a (user, password) pair with broker",
                              "an AuthBase object cannot travel to the workers: give a "
                              "(user, password) pair or an Authorization header")

    def __repr__(self) -> str:
        # Options are printed and logged: the auth password, credential headers, cookies and
        # proxy passwords never show.
        shown = ", ".join(f"{field.name}={shown_option(field.name, getattr(self, field.name))!r}"
                          for field in dataclasses.fields(self))
        return f"FetchOptions({shown})"

    def _normalized_timeout(self) -> tuple[float | None, float | None]:
        value = self.timeout
        pair = value if isinstance(value, (tuple, list)) else (value, value)
        if len(pair) != 2:
            raise OptionError("timeout", value, "a number or a (connect, read) pair")
        connect, read = (number("timeout", part, allow_none=True) for part in pair)
        if self.connect_timeout is not None:
            connect = self.connect_timeout
        return (connect, read)

    @property
    def timeouts(self) -> Timeouts:
        """``timeout`` (with ``connect_timeout`` applied) and ``deadline`` as one value.

        Example::

            >>> FetchOptions(timeout=(3, 20), deadline=60).timeouts
            Timeouts(connect=3.0, read=20.0, deadline=60.0)
        """
        connect, read = self.timeout
        return Timeouts(connect, read, self.deadline)

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry fields as one value (see :class:`~batchfetch.policies.RetryPolicy`).

        Example::

            >>> FetchOptions(retries=1, backoff=2).retry_policy.backoff
            2.0
        """
        return RetryPolicy(self.retries, self.backoff, self.retry_on, self.max_retry_wait,
                           self.throttled_retries, self.retry_non_idempotent)

    @property
    def limits(self) -> Limits:
        """``concurrency``, ``per_host``, ``rate`` and ``max_pending`` as one value.

        Example::

            >>> FetchOptions(concurrency=64, workers=2).limits.divided(2).concurrency
            32
        """
        return Limits(self.concurrency, self.per_host, self.rate, self.max_pending)

    @property
    def pending_limit(self) -> int:
        """Items pulled from the input but not yet yielded, at most."""
        return self.limits.pending_limit

    @property
    def multipart(self) -> dict[str, tuple[str | None, Any, str | None]] | None:
        """``files`` as requests sends them, each file read once (when the options were
        made); None without ``files``."""
        return getattr(self, "_multipart", None)

    @property
    def record_shape(self) -> dict[str, Any]:
        """What rows written for these options hold besides the standard columns and the
        body: ``FetchResult.to_record``'s and the writers' ``headers`` and
        ``header_columns`` keywords.

        Example::

            >>> FetchOptions(header_columns=["X-Request-Id"]).record_shape
            {'headers': False, 'header_columns': ('X-Request-Id',)}
        """
        return {"headers": self.response_headers, "header_columns": self.header_columns}

    @property
    def body_limit(self) -> int | None:
        """The largest decoded body an attempt reads before ``too_large`` (None: no cap).

        Example::

            >>> FetchOptions(keep_body=True).body_limit, FetchOptions().body_limit
            (10485760, None)
        """
        if self.max_bytes == "auto":
            return KEPT_BODY_LIMIT if self.keep_body else None
        return self.max_bytes

    @property
    def host_limit(self) -> int:
        """Requests in flight at once to one host.

        Example::

            >>> polite = FetchOptions(polite=True)
            >>> polite.host_limit, polite.replace(per_host=8).host_limit
            (4, 8)
        """
        default = POLITE_PER_HOST if self.polite else self.concurrency
        return min(self.per_host or default, self.concurrency)

    @property
    def follows_robots(self) -> bool:
        """robots.txt is fetched and obeyed: ``robots``, or the ``polite`` preset."""
        return self.robots or self.polite

    @property
    def adapts(self) -> bool:
        """Each host's requests in flight follow its latency: ``adaptive``, or ``polite``."""
        return self.adaptive or self.polite

    def replace(self, **changes: Any) -> "FetchOptions":
        """A copy with ``changes`` applied and validated; a family (``limits=Limits(...)``)
        replaces all of its fields.

        Example::

            >>> FetchOptions().replace(retries=0).retries
            0
            >>> FetchOptions(per_host=2).replace(limits=Limits(concurrency=4)).per_host is None
            True
        """
        return dataclasses.replace(self, **flat_keywords(changes))

    @classmethod
    def field_names(cls) -> list[str]:
        """The keywords :func:`batchfetch.fetch_all` accepts as options, one per field
        (the families, ``timeouts``, ``retry_policy`` and ``limits``, are not fields)."""
        return [field.name for field in dataclasses.fields(cls)]

    def to_dict(self) -> dict[str, Any]:
        """Every option as JSON can carry it, for :meth:`from_dict` in another process or
        on another machine: ``json.dumps(options.to_dict())`` works.

        Bytes become ``{"$base64": "..."}``; ``timeout``, ``cert`` and ``auth`` pairs
        become lists; a tuple inside ``params``, ``data``, ``json``, ``headers``,
        ``cookies`` or ``proxies`` becomes ``{"$tuple": [...]}``; ``ok_status`` and
        ``retry_on`` become lists of ranges (``["429", "500-504"]``); ``hosts`` becomes
        its patterns' tables as the TOML file writes them, with ``source`` and the headers
        read from the environment (``hidden_headers``). Secrets (auth, credential headers,
        cookies, those read from the environment) are written out: guard the dict as you
        would the options.

        Raises :class:`~batchfetch.errors.OptionError` naming an option that cannot travel:
        an ``auth`` that is not a ``(user, password)`` pair, a value JSON has no form for
        (an object, a set, a key that is not a string, nan), a mapping whose one key is
        ``"$base64"`` or ``"$tuple"``, HostRules made by hand that do not read back.

        Example::

            >>> data = FetchOptions(retries=1, data=b"\\x00hi", timeout=5).to_dict()
            >>> data["retries"], data["data"], data["timeout"], data["retry_on"]
            (1, {'$base64': 'AGhp'}, [5.0, 5.0], ['429', '500', '502-504'])
        """
        return options_to_dict(self)

    def to_shown_dict(self) -> dict[str, Any]:
        """Every option as a run store records it: the auth password, credential headers,
        cookies and passwords in URLs masked, ``hosts`` by its source only, ``files`` by
        their part names. For records, not for :meth:`from_dict` (a value JSON has no form
        for is left for the writer to show as text).

        Example::

            >>> shown = FetchOptions(auth=("ann", "s3cret"), headers={"X-Api-Key": "k"})
            >>> shown.to_shown_dict()["auth"], shown.to_shown_dict()["headers"]
            (('ann', '***'), {'X-Api-Key': '***'})
        """
        shown: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            name, value = field.name, getattr(self, field.name)
            if name == "hosts":
                shown[name] = None if value is None else {"source": value.source}
            elif name == "files":
                shown[name] = None if value is None else sorted(value)
            elif name in ("ok_status", "retry_on"):
                shown[name] = status_ranges(value)
            else:
                shown[name] = shown_option(name, value)
        return shown

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FetchOptions":
        """Options from what :meth:`to_dict` gave (or any part of it: the rest default),
        validated as the keywords are; ``FetchOptions.from_dict(o.to_dict()) == o``.

        Raises OptionError for a key that is not an option, or a value (or mark) that is
        not valid.

        Example::

            >>> import json
            >>> options = FetchOptions(data=b"\\x00hi", params=[("q", "x")], retry_on="503")
            >>> FetchOptions.from_dict(json.loads(json.dumps(options.to_dict()))) == options
            True
            >>> FetchOptions.from_dict({"concurrency": 4}) == FetchOptions(concurrency=4)
            True
        """
        return cls(**keywords_from_dict(data, cls.field_names()))


#: A header name: an RFC 9110 token.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _header_columns(value: Any) -> tuple[str, ...]:
    """``header_columns`` as a tuple of header names (a str is one), each a token whose
    column a row does not have already; a second name for the same column is dropped, and
    so are ETag and Last-Modified, whose columns every row has."""
    names = (value,) if isinstance(value, str) else value
    if not isinstance(names, (tuple, list)) or not all(isinstance(n, str) for n in names):
        raise OptionError("header_columns", value, "header names (a str or a list of them)")
    picked: dict[str, str] = {}
    for name in (name.strip() for name in names):
        if not _HEADER_NAME.fullmatch(name):
            raise OptionError("header_columns", value, "header names",
                              f"{name!r} is not a header name")
        column = header_column(name)
        if column in VALIDATOR_COLUMNS:
            continue  # every row has its etag and last_modified column already
        if column in ROW_COLUMNS:
            raise OptionError("header_columns", value, "header names",
                              f"{name!r} would be the column {column!r}, which rows have "
                              "already")
        picked.setdefault(column, name)
    return tuple(picked.values())


def _taking_families(flat_init: Any) -> Any:
    @functools.wraps(flat_init)
    def __init__(self: FetchOptions, *args: Any, **keywords: Any) -> None:
        flat_init(self, *args, **flat_keywords(keywords))
    return __init__


# The dataclass's own __init__ takes the fields; this one takes the families too. Wrapped,
# not written out, so that the fields stay the one list of keywords and defaults.
FetchOptions.__init__ = _taking_families(FetchOptions.__init__)  # type: ignore[method-assign]
