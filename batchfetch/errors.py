"""batchfetch's exceptions, and the one function that maps a requests/urllib3/gevent
exception to an error kind (the kinds themselves are in ``kinds.py``).
"""
from __future__ import annotations

import http.client
import json
import socket
import ssl
from typing import Any

import requests.exceptions as rex
import urllib3.exceptions as u3

from .kinds import ERROR_KINDS, ErrorKind
from .redaction import shown_option

__all__ = ["ERROR_KINDS", "ErrorKind", "BatchFetchError", "OptionError", "HostRulesError",
           "InvalidItemError", "RedirectLocationError", "DeadlineExceeded",
           "BodyTooLargeError", "SaveError", "HTTPStatusError", "RobotsDisallowedError",
           "RowError", "FetchFailedError", "BrokerError", "StoreError", "SinceError",
           "classify"]

class BatchFetchError(Exception):
    """Base class of every exception batchfetch raises.

    Example::

        >>> from batchfetch import FetchOptions
        >>> try:
        ...     FetchOptions(retries=-1)
        ... except BatchFetchError as exc:
        ...     print(type(exc).__name__)
        OptionError
    """


class OptionError(BatchFetchError, ValueError):
    """An option has an invalid value.

    Example::

        >>> from batchfetch import FetchOptions
        >>> FetchOptions(concurrency=0)
        Traceback (most recent call last):
        ...
        batchfetch.errors.OptionError: concurrency must be an integer >= 1, got 0
    """

    def __init__(self, option: str, value: Any, expected: str, problem: str = "") -> None:
        super().__init__(option, value, expected, problem)
        self.option = option
        self.value = value
        self.expected = expected
        #: What is wrong, when a sentence says it better than "must be ..., got ...".
        self.problem = problem

    def __str__(self) -> str:
        if self.problem:
            return f"{self.option}: {self.problem}"
        return f"{self.option} must be {self.expected}, got {self.shown_value!r}"

    @property
    def shown_value(self) -> Any:
        """The value as a message may show it: passwords, tokens and cookies masked."""
        return shown_option(self.option, self.value)


class HostRulesError(OptionError):
    """The per-host settings (``hosts``: a TOML file or a mapping) are unusable.

    The message names the file (``hosts`` for a mapping), the host pattern and the key,
    as the TOML parser gives no line numbers; it never repeats a secret. The ``option``
    is ``hosts`` and the ``value`` the file's name, never the settings themselves.

    Example::

        >>> print(HostRulesError("hosts.toml", "api.example.com", "rate",
        ...                      'expected a number > 0, got "fast"'))
        hosts.toml: ["api.example.com"] rate: expected a number > 0, got "fast"
    """

    def __init__(self, source: str, pattern: str | None, key: str | None,
                 message: str) -> None:
        where = " ".join(filter(None, [
            None if pattern is None else f"[{json.dumps(pattern, ensure_ascii=False)}]", key]))
        super().__init__("hosts", source, "usable per-host settings",
                         f"{source}: {where}: {message}" if where else f"{source}: {message}")
        self.args = (source, pattern, key, message)  # what pickle passes back to __init__
        #: The file's name as given (``hosts`` for a mapping).
        self.source = source
        #: The host pattern as written, or None for the file as a whole.
        self.pattern = pattern
        #: The key (``rate``, ``auth.bearer``, ``headers.X-Token``), or None.
        self.key = key
        #: What is wrong, without the location.
        self.message = message

    def __str__(self) -> str:
        return self.problem


class InvalidItemError(BatchFetchError, ValueError):
    """An input item cannot become a request; carries the error ``kind``.

    The dispatcher turns it into an error row; it reaches users only through
    :func:`batchfetch.inputs.to_spec` when they call it directly. ``kind`` is an
    :class:`ErrorKind` (a string that names none raises ValueError).
    """

    def __init__(self, kind: ErrorKind | str, message: str) -> None:
        super().__init__(kind, message)
        self.kind = ErrorKind(kind)
        self.message = message

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


class RedirectLocationError(BatchFetchError, ValueError):
    """A redirect names a URL that cannot be requested (malformed, another scheme); the
    row's error kind is ``invalid_url``, its message names the Location."""

    def __init__(self, location: str, reason: str) -> None:
        super().__init__(location, reason)
        self.location = location
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot follow the redirect to {self.location!r}: {self.reason}"


class DeadlineExceeded(BatchFetchError):
    """An attempt ran past ``deadline``.

    Raised through :class:`gevent.Timeout`, whose own class is a BaseException
    that would escape ``except Exception`` handlers (grequests' among them).

    Example::

        >>> from batchfetch import fetch_all
        >>> row = fetch_all(["http://127.0.0.1:8000/delay/5"], deadline=0.2, retries=0)[0]
        >>> row.error, row.message
        ('deadline', 'attempt exceeded the 0.2 s deadline')
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds

    def __str__(self) -> str:
        return f"attempt exceeded the {self.seconds:g} s deadline"


class BodyTooLargeError(BatchFetchError):
    """A decoded body grew past ``max_bytes``; the connection is closed, not drained."""

    def __init__(self, limit: int, automatic: bool = False) -> None:
        super().__init__(limit, automatic)
        self.limit = limit
        #: The limit is max_bytes="auto"'s cap on kept bodies, not one the user set.
        self.automatic = automatic

    def __str__(self) -> str:
        if self.automatic:
            return (f"kept body exceeded {self.limit} bytes, the cap of max_bytes='auto' "
                    f"(raise it with max_bytes or --max-bytes; None or 'none': no cap)")
        return f"body exceeded max_bytes={self.limit}"


class SaveError(BatchFetchError, OSError):
    """A body could not be written to ``save_dir`` (a full disk, no permission, a directory
    in the way); the row's error kind is ``save``.

    ``path`` is the file, ``error`` the OSError behind it (also in ``errno``/``strerror``).
    """

    def __init__(self, path: str, error: OSError) -> None:
        super().__init__(error.errno, error.strerror)
        self.path = path
        self.error = error
        self.filename = path

    def __reduce__(self):
        return type(self), (self.path, self.error)

    def __str__(self) -> str:
        return f"cannot save the body to {self.path}: {self.error.strerror or self.error}"


class HTTPStatusError(BatchFetchError):
    """A response arrived with a status outside ``ok_status``.

    What ``exception_handler`` receives for an ``http`` row (no exception was raised
    while fetching it, but the handler is always given one).

    Example::

        >>> from batchfetch import fetch_all
        >>> handled = []
        >>> table = fetch_all(["http://127.0.0.1:8000/status/404"],
        ...                   exception_handler=lambda item, exc: handled.append(exc))
        >>> handled[0].status, str(handled[0])
        (404, 'http://127.0.0.1:8000/status/404: 404 Not Found')
    """

    def __init__(self, url: str, status: int | None, message: str) -> None:
        super().__init__(url, status, message)
        self.url = url
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return f"{self.url}: {self.message}"


class RobotsDisallowedError(BatchFetchError):
    """robots.txt keeps a URL from being requested; the row's error kind is ``robots``.

    What ``exception_handler`` receives for a ``robots`` row. ``robots_url`` is the
    robots.txt that decided, ``message`` says why (a rule, or a robots.txt that answered
    5xx or could not be fetched).

    Example::

        >>> str(RobotsDisallowedError("http://h/private", "http://h/robots.txt",
        ...                           "disallowed by http://h/robots.txt for user agent 'a/1'"))
        "disallowed by http://h/robots.txt for user agent 'a/1'"
    """

    def __init__(self, url: str, robots_url: str, message: str) -> None:
        super().__init__(url, robots_url, message)
        self.url = url
        self.robots_url = robots_url
        self.message = message

    def __str__(self) -> str:
        return self.message


class RowError(BatchFetchError):
    """A failed row's ``kind``, ``url`` and ``message``, where no exception came with it.

    What ``exception_handler`` receives for a ``lost`` row, and for any row whose
    exception could not travel from the engine that fetched it (rows shipped as JSON).

    Example::

        >>> str(RowError("lost", "http://h/a", "no row came back"))
        'http://h/a: lost: no row came back'
    """

    def __init__(self, kind: str, url: str, message: str) -> None:
        super().__init__(kind, url, message)
        self.kind = kind
        self.url = url
        self.message = message

    def __str__(self) -> str:
        return f"{self.url}: {self.kind}: {self.message}"


class FetchFailedError(BatchFetchError):
    """Raised by :meth:`ResultTable.raise_for_errors` when some rows failed.

    ``failed`` holds the failed rows, in input order.

    Example::

        >>> from batchfetch import fetch_all
        >>> table = fetch_all(["http://127.0.0.1:8000/ok", "http://127.0.0.1:8000/status/404"])
        >>> try:
        ...     table.raise_for_errors()
        ... except FetchFailedError as exc:
        ...     print(exc, [row.index for row in exc.failed])
        1 of the fetches failed; first: http://127.0.0.1:8000/status/404: http: 404 Not Found [1]
    """

    def __init__(self, failed: list) -> None:
        super().__init__(failed)
        self.failed = failed

    def __str__(self) -> str:
        first = self.failed[0]
        more = f" (and {len(self.failed) - 1} more)" if len(self.failed) > 1 else ""
        return f"{len(self.failed)} of the fetches failed; first: {first.url}: {first.error}: " \
               f"{first.message}{more}"


class BrokerError(BatchFetchError):
    """The broker of a distributed run (``broker=``) cannot be reached, or went away during
    the run: the rows yielded before it stand; the run stops.

    Example::

        >>> str(BrokerError("redis://127.0.0.1:1/0", ConnectionRefusedError("refused")))
        'cannot reach the broker redis://127.0.0.1:1/0: refused'
    """

    def __init__(self, broker: str, cause: BaseException) -> None:
        super().__init__(broker, cause)
        self.broker = broker
        self.cause = cause

    def __str__(self) -> str:
        return f"cannot reach the broker {self.broker}: {self.cause}"


class _FileProblem(BatchFetchError, ValueError):
    """A file batchfetch cannot use as it is: its ``path``, and the ``problem``."""

    #: How the message names the file.
    naming = "{path}"

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path, self.problem = path, problem

    def __str__(self) -> str:
        return f"{self.naming.format(path=self.path)}: {self.problem}"


class StoreError(_FileProblem):
    """A store file that cannot be used as it is (not SQLite, corrupt, locked, tables of
    another shape); nothing was written to it."""


class SinceError(_FileProblem):
    """The previous output ``since`` names cannot be read (missing, not rows batchfetch
    wrote, an unusable store).

    Example::

        >>> str(SinceError("monday.jsonl", "no such file"))
        'the previous output monday.jsonl (since): no such file'
    """

    naming = "the previous output {path} (since)"


class OutputError(BatchFetchError):
    """Rows could not be written (a full disk, an I/O error); ``name`` is the output and
    ``error`` the OSError."""

    def __init__(self, name: str, error: OSError) -> None:
        super().__init__(name, error)
        self.name = name
        self.error = error

    def __str__(self) -> str:
        return f"cannot write rows to {self.name}: {self.error.strerror or self.error}"


def _causes(exc: BaseException):
    """``exc`` and everything it wraps (args, __cause__, __context__, reason)."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None),
                  *current.args]
        stack.extend(item for item in linked if isinstance(item, BaseException))


def _has(exc: BaseException, *types: type) -> bool:
    return any(isinstance(cause, types) for cause in _causes(exc))


def _describe(exc: BaseException) -> str:
    """A one-line human message: the innermost meaningful text, no pool reprs."""
    for cause in _causes(exc):
        if isinstance(cause, (u3.ConnectTimeoutError, u3.ReadTimeoutError)) and isinstance(
                cause.args[-1] if cause.args else None, str):
            # urllib3 puts the pool or connection first and the sentence last.
            return cause.args[-1].split(": ", 1)[-1]
        if isinstance(cause, (ConnectionResetError, ConnectionRefusedError, socket.gaierror,
                              ssl.SSLError, http.client.HTTPException, DeadlineExceeded,
                              BodyTooLargeError, SaveError, RedirectLocationError,
                              RobotsDisallowedError,
                              u3.NameResolutionError)):
            text = str(cause) or type(cause).__name__
            return text if isinstance(cause, BatchFetchError) else f"{type(cause).__name__}: {text}"
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def classify(exc: BaseException) -> tuple[ErrorKind, str]:
    """Map an exception raised while fetching to ``(error kind, message)``.

    The only place that knows how requests, urllib3 and gevent report failures.

    Example::

        >>> import requests
        >>> classify(requests.exceptions.ConnectTimeout("timed out"))
        (<ErrorKind.CONNECT_TIMEOUT: 'connect_timeout'>, 'timed out')
    """
    kind = _kind(exc)
    return kind, _describe(exc)


def _kind(exc: BaseException) -> ErrorKind:
    # Order matters: wrappers (requests.ConnectionError) carry the real cause inside.
    if isinstance(exc, InvalidItemError):
        return exc.kind
    if isinstance(exc, RobotsDisallowedError):
        return ErrorKind.ROBOTS
    if _has(exc, DeadlineExceeded):
        return ErrorKind.DEADLINE
    if _has(exc, BodyTooLargeError):
        return ErrorKind.TOO_LARGE
    if _has(exc, SaveError):
        return ErrorKind.SAVE
    if isinstance(exc, (rex.MissingSchema, rex.InvalidSchema, rex.InvalidURL,
                        u3.LocationParseError, u3.LocationValueError, RedirectLocationError)):
        return ErrorKind.INVALID_URL
    if isinstance(exc, rex.TooManyRedirects):
        return ErrorKind.TOO_MANY_REDIRECTS
    if isinstance(exc, rex.ConnectTimeout):
        return ErrorKind.CONNECT_TIMEOUT
    if _has(exc, u3.NameResolutionError, socket.gaierror):
        return ErrorKind.DNS
    # urllib3's NewConnectionError subclasses ConnectTimeoutError: test it first.
    if _has(exc, u3.NewConnectionError, ConnectionRefusedError):
        return ErrorKind.CONNECT
    if _has(exc, u3.ConnectTimeoutError):
        return ErrorKind.CONNECT_TIMEOUT
    if isinstance(exc, rex.SSLError) or _has(exc, ssl.SSLError, u3.SSLError):
        return ErrorKind.TLS
    if isinstance(exc, rex.ReadTimeout) or _has(exc, u3.ReadTimeoutError, socket.timeout):
        return ErrorKind.TIMEOUT
    if _has(exc, ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
        # RemoteDisconnected (closed without a response) is a ConnectionResetError.
        return ErrorKind.RESET
    if _has(exc, u3.IncompleteRead, http.client.IncompleteRead):
        return ErrorKind.TRUNCATED
    if isinstance(exc, (rex.ContentDecodingError, rex.ChunkedEncodingError,
                        rex.RequestException, u3.HTTPError, http.client.HTTPException)):
        return ErrorKind.PROTOCOL
    if isinstance(exc, OSError):
        return ErrorKind.CONNECT
    # Anything else is unexpected; the dispatcher logs its traceback, and the
    # row still says what happened rather than the batch aborting.
    return ErrorKind.PROTOCOL
