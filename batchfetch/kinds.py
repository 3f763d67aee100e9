"""The error kinds a row can carry: what each means, whether it is retried, and whether
the request may have reached the server.
"""
from __future__ import annotations

import enum

__all__ = ["ERROR_KINDS", "ErrorKind", "NEVER_SENT_ERRORS", "TRANSIENT_ERRORS"]

# ErrorKind.retried's words for the kinds retried always, never, or for some methods.
_ALWAYS, _NEVER, _IDEMPOTENT = "yes", "no", "idempotent methods only"


class ErrorKind(enum.StrEnum):
    """Every error kind a :class:`~batchfetch.FetchResult` can carry.

    A kind is a ``str``: ``row.error == "timeout"``, and rows, CSV and JSON hold the
    bare value. Each member carries

    - ``meaning``: what happened (:data:`ERROR_KINDS` maps each value to it);
    - ``retried``: whether batchfetch tries the request again, within ``retries``, as
      :func:`batchfetch.scheduling.retry.decide` does: ``"yes"`` (any method), ``"no"``,
      ``"idempotent methods only"`` (every method with ``retry_non_idempotent=True``),
      or the condition;
    - ``maybe_sent``: whether the request may have reached the server; when False, sending
      a POST again cannot do its work twice.

    The README's table lists the kinds in this order, with the same ``retried`` and
    ``maybe_sent`` (a test checks).

    Example::

        >>> ErrorKind("timeout") is ErrorKind.TIMEOUT, ErrorKind.TIMEOUT == "timeout"
        (True, True)
        >>> f"{ErrorKind.CONNECT}", ErrorKind.CONNECT.retried, ErrorKind.CONNECT.maybe_sent
        ('connect', 'yes', False)
    """

    meaning: str
    retried: str
    maybe_sent: bool

    def __new__(cls, value: str, meaning: str, retried: str, maybe_sent: bool) -> "ErrorKind":
        member = str.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        member.retried = retried
        member.maybe_sent = maybe_sent
        return member

    INVALID_URL = (
        "invalid_url",
        "the URL cannot be requested (no scheme, not http/https, no host, bad syntax)",
        _NEVER, False)
    INVALID_REQUEST = (
        "invalid_request",
        "the request spec is unusable (unknown method, no url, unknown key, bad type, "
        "a header or cookie value with a line break)",
        _NEVER, False)
    DNS = "dns", "the host name did not resolve", _NEVER, False
    CONNECT = "connect", "the TCP connection failed (refused, unreachable)", _ALWAYS, False
    CONNECT_TIMEOUT = (
        "connect_timeout",
        "the TCP (or TLS) connection was not established within the connect timeout",
        _ALWAYS, False)
    # Also an SSL error after the handshake (a TLS record error while the answer is read).
    TLS = "tls", "the TLS handshake or certificate verification failed", _NEVER, True
    TIMEOUT = "timeout", "no data arrived for the read timeout", _IDEMPOTENT, True
    DEADLINE = "deadline", "the attempt ran past its wall-clock deadline", _IDEMPOTENT, True
    RESET = (
        "reset", "the peer reset or closed the connection",
        "idempotent methods; any before an answer on a reused connection", True)
    TRUNCATED = "truncated", "the body ended before its declared length", _IDEMPOTENT, True
    PROTOCOL = (
        "protocol",
        "the peer did not speak valid HTTP (garbage, bad chunking, bad encoding)",
        _NEVER, True)
    TOO_MANY_REDIRECTS = (
        "too_many_redirects", "more than max_redirects redirects", _NEVER, True)
    TOO_LARGE = "too_large", "the decoded body grew past max_bytes", _NEVER, True
    SAVE = (
        "save", "the body could not be written to save_dir (a full disk, no permission)",
        _NEVER, True)
    HTTP = (
        "http", "a response arrived, but its status is not in ok_status",
        "retry_on statuses; non-idempotent: 429/503 with Retry-After", True)
    ROBOTS = (
        "robots",
        "not requested: the origin's robots.txt disallows the URL for the User-Agent sent, "
        "or answered 5xx or 429, or could not be fetched (RFC 9309: disallow all)",
        _NEVER, False)
    LOST = (
        "lost",
        "the engine running the batch ended without a row for this input (a worker process "
        "that went away): it may have been sent",
        _NEVER, True)


#: Every error kind's value with its meaning, in :class:`ErrorKind`'s order; nothing else
#: invents kinds.
ERROR_KINDS: dict[str, str] = {kind.value: kind.meaning for kind in ErrorKind}


#: Error kinds worth another attempt: the network may do better next time (an ``http``
#: row's retry depends on its status instead). Read off ``ErrorKind.retried``, so the
#: table and the retry decisions cannot disagree.
TRANSIENT_ERRORS = frozenset(kind for kind in ErrorKind
                             if kind.retried != _NEVER and kind != "http")
#: Kinds after which a non-idempotent request was certainly not processed: those retried
#: for any method.
NEVER_SENT_ERRORS = frozenset(kind for kind in ErrorKind if kind.retried == _ALWAYS)
