"""FetchOptions: the one frozen, validated value object behind every fetch.

Every default lives here, once. The CLI and the Python API build the same object.
"""
from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Union

from requests.auth import AuthBase

from ._version import __version__
from .errors import OptionError
from .headers import (first_cookie_problem, first_header_problem, form_problem, header_problem,
                      is_latin1)
from .methods import normalize_method
from .redaction import mask_passwords, shown_option
from .urls import proxy_url_problem

if TYPE_CHECKING:
    from .host_rules import HostsValue

__all__ = ["FetchOptions", "parse_status_set", "DEFAULT_OK_STATUS", "DEFAULT_RETRY_ON",
           "KEPT_BODY_LIMIT"]

#: Statuses that count as ok unless ``ok_status`` says otherwise: 1xx to 3xx.
DEFAULT_OK_STATUS = frozenset(range(100, 400))
#: Statuses retried unless ``retry_on`` says otherwise.
DEFAULT_RETRY_ON = frozenset({429, 500, 502, 503, 504})
#: The cap on a kept body while ``max_bytes`` is ``"auto"`` (the default): larger than nearly
#: every API response or web page, small enough that the default 16 requests in flight hold
#: at most 160 MiB of bodies being read, whatever a server (or a gzip bomb) sends.
KEPT_BODY_LIMIT = 10 * 1024 * 1024
#: Requests in flight per host with ``polite=True`` unless ``per_host`` is given: what a
#: browser opens to one site is six; a crawler that is a guest takes fewer.
POLITE_PER_HOST = 4

Timeout = Union[float, int, None, tuple]
_STATUS_RANGE = re.compile(r"^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$")


def parse_status_set(value: Any, option: str = "ok_status") -> frozenset[int]:
    """Turn ``"200-299,404"``, ``404``, ``range(200, 300)`` or ``[200, 201]`` into a set.

    Example::

        >>> sorted(parse_status_set("200-202,404"))
        [200, 201, 202, 404]
    """
    expected = 'statuses such as "200-299,404", a status, or an iterable of statuses'
    if isinstance(value, bool):
        raise OptionError(option, value, expected)
    if isinstance(value, int):
        parts: Iterable[Any] = [value]
    elif isinstance(value, str):
        parts = [part for part in value.split(",") if part.strip()]
        if not parts:
            raise OptionError(option, value, expected)
    elif isinstance(value, Iterable):
        parts = list(value)
    else:
        raise OptionError(option, value, expected)
    statuses: set[int] = set()
    for part in parts:
        if isinstance(part, range):
            statuses.update(part)
            continue
        if isinstance(part, int) and not isinstance(part, bool):
            low = high = part
        elif isinstance(part, str) and _STATUS_RANGE.match(part):
            found = _STATUS_RANGE.match(part)
            low = int(found.group(1))
            high = int(found.group(2) or low)
        else:
            raise OptionError(option, value, expected)
        if not 100 <= low <= high <= 599:
            raise OptionError(option, value, "statuses between 100 and 599, low-high ranges")
        statuses.update(range(low, high + 1))
    return frozenset(statuses)


def _number(option: str, value: Any, *, minimum: float = 0.0, allow_none: bool = False,
            strictly_positive: bool = True) -> float | None:
    if value is None and allow_none:
        return None
    bound = f"> {minimum:g}" if strictly_positive else f">= {minimum:g}"
    expected = f"a number {bound}" + (" or None" if allow_none else "")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OptionError(option, value, expected)
    if value != value or value == float("inf"):
        raise OptionError(option, value, expected)
    if value < minimum or (strictly_positive and value == minimum):
        raise OptionError(option, value, expected)
    return float(value)


def _integer(option: str, value: Any, *, minimum: int, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        expected = f"an integer >= {minimum}" + (" or None" if allow_none else "")
        raise OptionError(option, value, expected)
    return value


def _string_mapping(option: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
            isinstance(key, str) and isinstance(item, (str, bytes)) for key, item in value.items()):
        raise OptionError(option, value, "a mapping of str to str")
    problem = None
    if option == "headers":
        problem = first_header_problem(value)
    elif option == "cookies":
        problem = first_cookie_problem(value)
    if problem:
        raise OptionError(option, value, "values every request can carry", problem)
    return dict(value)


def _proxy_problem(proxies: Mapping[str, str]) -> str | None:
    """What is wrong with a proxy URL, named: else every row fails as invalid_url, each
    message blaming its own URL."""
    for scheme, url in proxies.items():
        if scheme == "no_proxy" or not url:
            continue
        problem = proxy_url_problem(url)
        if problem:
            return f"proxy {mask_passwords(url)!r} for {scheme} {problem}"
    return None


def _existing_path(option: str, value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)) or not os.path.exists(value):
        raise OptionError(option, value, "the path of an existing file or directory")
    return os.fspath(value)


@dataclasses.dataclass(frozen=True)
class FetchOptions:
    """How a batch is fetched. Validated when created; every field has a default.

    A bad value raises :class:`~batchfetch.errors.OptionError` (a ``ValueError``)
    naming the option and the value. The same fields are keywords of
    :func:`batchfetch.fetch_all` and ``--flags`` of the CLI.

    Example::

        >>> options = FetchOptions(concurrency=50, timeout=(3, 20), retries=2)
        >>> options.timeout
        (3.0, 20.0)
    """

    #: Requests in flight at once, across all hosts.
    concurrency: int = 16
    #: Seconds: a number for both connect and read, or a ``(connect, read)`` pair.
    #: ``None`` in either place waits forever (the deadline still applies).
    timeout: Timeout = (10.0, 30.0)
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
    #: Directory to stream each body into (created if missing); the row's ``path`` names
    #: the file. None: bodies are not saved.
    save_dir: str | None = None
    #: Extra attempts after the first for retryable failures.
    retries: int = 3
    #: Base of the exponential backoff in seconds (with jitter, capped at max_retry_wait).
    backoff: float = 0.5
    #: Statuses that are retried.
    retry_on: Any = DEFAULT_RETRY_ON
    #: Longest wait honoured for Retry-After (and the cap of the backoff), in seconds; also
    #: the most one row waits in all for its throttled retries.
    max_retry_wait: float = 60.0
    #: Extra attempts after 429 answers, which do not count against ``retries``: the run
    #: slows down for the host instead (see "Being polite" in the README).
    throttled_retries: int = 10
    #: Retry POST/PATCH on timeouts, resets after sending and retryable statuses too.
    retry_non_idempotent: bool = False
    #: Wall-clock seconds one attempt may take, from its start to the end of the body.
    deadline: float | None = 120.0
    #: Largest decoded body in bytes; larger ones fail with ``too_large``. ``"auto"``:
    #: KEPT_BODY_LIMIT (10 MiB) when bodies are kept, no cap when they are only counted or
    #: saved (memory stays flat). None: no cap, kept bodies included.
    max_bytes: int | str | None = "auto"
    #: Requests in flight at once per host (scheme, name, port). None: only concurrency.
    per_host: int | None = None
    #: Attempts started per second across the run, retries included. None: no limit.
    rate: float | None = None
    #: Send plain requests straight to urllib3 (the same pools, headers, body and errors,
    #: less CPU); False sends every request through requests' full Session path.
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
    #: Worker processes sharing the batch (each with its own hub, pool and session);
    #: concurrency, per_host, rate and max_pending are divided between them.
    workers: int = 1
    #: Items pulled from the input but not yet yielded (the look-ahead window in which
    #: per-host fairness holds). None: 4 x concurrency, at least 256.
    max_pending: int | None = None
    #: Settings by host pattern (concurrency, rate, retries, timeouts, headers, auth, proxy):
    #: the path of a TOML file, a mapping of the same shape, or HostRules; read and checked
    #: here, once (see :mod:`batchfetch.host_rules`). None: the run's settings everywhere.
    hosts: HostsValue | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalised values are set once, here
        set_(self, "concurrency", _integer("concurrency", self.concurrency, minimum=1))
        set_(self, "connect_timeout", _number("connect_timeout", self.connect_timeout,
                                               allow_none=True))
        set_(self, "timeout", self._normalized_timeout())
        try:
            set_(self, "method", normalize_method(self.method))
        except ValueError as exc:
            raise OptionError("method", self.method, str(exc)) from None
        for name in ("headers", "cookies"):
            set_(self, name, _string_mapping(name, getattr(self, name)))
        if self.proxies is not None:  # None: the environment's; {}: no proxy at all
            set_(self, "proxies", _string_mapping("proxies", self.proxies))
            problem = _proxy_problem(self.proxies)
            if problem:
                raise OptionError("proxies", self.proxies, "proxy URLs", problem)
        if self.params is not None and not isinstance(self.params, (Mapping, list, tuple)):
            raise OptionError("params", self.params, "a mapping or a list of pairs")
        if self.data is not None and self.json is not None:
            raise OptionError("data", self.data, "unset when json is set (one body only)")
        problem = form_problem(self.data)
        if problem:
            raise OptionError("data", self.data, "a string, bytes or form fields", problem)
        if self.auth is not None and not isinstance(self.auth, AuthBase) and not (
                isinstance(self.auth, tuple) and len(self.auth) == 2
                and all(isinstance(part, str) for part in self.auth)):
            raise OptionError("auth", self.auth, "a (user, password) pair or a requests AuthBase")
        if isinstance(self.auth, tuple) and not all(map(is_latin1, self.auth)):
            raise OptionError("auth", self.auth, "Latin-1 text", "the user or the password has "
                              "a character outside Latin-1, which basic auth cannot send")
        if not isinstance(self.verify, bool):
            set_(self, "verify", _existing_path("verify", self.verify))
        if self.cert is not None:
            paths = self.cert if isinstance(self.cert, tuple) else (self.cert,)
            if len(paths) not in (1, 2):
                raise OptionError("cert", self.cert, "a path or a (cert, key) pair of paths")
            set_(self, "cert", tuple(_existing_path("cert", p) for p in paths)
                 if len(paths) == 2 else _existing_path("cert", paths[0]))
        if self.save_dir is not None:
            if not isinstance(self.save_dir, (str, os.PathLike)) or not os.fspath(
                    self.save_dir) or (os.path.exists(self.save_dir)
                                       and not os.path.isdir(self.save_dir)):
                raise OptionError("save_dir", self.save_dir, "the path of a directory")
            set_(self, "save_dir", os.fspath(self.save_dir))
        for name in ("allow_redirects", "keep_body", "retry_non_idempotent", "fast_path",
                     "robots", "adaptive", "polite"):
            if not isinstance(getattr(self, name), bool):
                raise OptionError(name, getattr(self, name), "True or False")

        set_(self, "max_redirects", _integer("max_redirects", self.max_redirects, minimum=0))
        if not isinstance(self.user_agent, str):
            raise OptionError("user_agent", self.user_agent, "a string")
        problem = header_problem("User-Agent", self.user_agent)
        if problem:
            raise OptionError("user_agent", self.user_agent, "a valid header value", problem)
        set_(self, "ok_status", parse_status_set(self.ok_status, "ok_status"))
        set_(self, "retry_on", parse_status_set(self.retry_on, "retry_on")
             if self.retry_on not in ((), "", None) else frozenset())
        set_(self, "retries", _integer("retries", self.retries, minimum=0))
        set_(self, "throttled_retries", _integer("throttled_retries", self.throttled_retries,
                                                 minimum=0))
        set_(self, "backoff", _number("backoff", self.backoff, strictly_positive=False))
        set_(self, "max_retry_wait", _number("max_retry_wait", self.max_retry_wait,
                                             strictly_positive=False))
        set_(self, "deadline", _number("deadline", self.deadline, allow_none=True))
        if self.max_bytes not in ("auto", None) and (
                isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int)
                or self.max_bytes < 0):
            raise OptionError("max_bytes", self.max_bytes, "an integer >= 0, 'auto' or None")
        set_(self, "per_host", _integer("per_host", self.per_host, minimum=1, allow_none=True))
        set_(self, "rate", _number("rate", self.rate, allow_none=True))
        set_(self, "max_pending", _integer("max_pending", self.max_pending, minimum=1,
                                           allow_none=True))
        set_(self, "workers", _integer("workers", self.workers, minimum=1))
        if self.hosts is not None:
            from .host_rules import HostRules  # here: it builds on this module's checks

            set_(self, "hosts", HostRules.coerce(self.hosts))

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
        connect, read = (_number("timeout", part, allow_none=True) for part in pair)
        if self.connect_timeout is not None:
            connect = self.connect_timeout
        return (connect, read)

    @property
    def pending_limit(self) -> int:
        """Items pulled from the input but not yet yielded, at most."""
        return self.max_pending or max(256, 4 * self.concurrency)

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

            >>> FetchOptions(polite=True).host_limit, FetchOptions(polite=True, per_host=8).host_limit
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
        """A copy with ``changes`` applied and validated.

        Example::

            >>> FetchOptions().replace(retries=0).retries
            0
        """
        return dataclasses.replace(self, **changes)

    @classmethod
    def field_names(cls) -> list[str]:
        """The keywords :func:`batchfetch.fetch_all` accepts as options."""
        return [field.name for field in dataclasses.fields(cls)]
