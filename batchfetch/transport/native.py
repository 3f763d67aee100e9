"""Plain requests on batchfetch's own connections (``connections.py``), answered by llhttp
(``_ghc.py``): the bytes requests would send, a requests.Response back, and the exception
requests would raise for every failure.

requests, urllib3 and http.client spend about four times the CPU of a gevent-native client
on a small request. This module writes the request line and headers requests' path would
write (``tests/test_parity.py`` holds it to that byte for byte) and lets geventhttpclient's
C parser read the answer (``answers.py`` turns it into what requests' adapter returns).
"""
from __future__ import annotations

import errno
import http.client
import re
import ssl
import warnings
from typing import Any

import requests
import requests.exceptions as rex
import urllib3.exceptions as u3
from requests.structures import CaseInsensitiveDict
from urllib3.util import SKIP_HEADER

from .._cache import BoundedCache
from ..urls import is_plain_url
from ._ghc import HTTPConnectionClosed, ResponseHead
from .answers import read_by_http_client, response_for
from .connections import SENT_ON, Connections, TlsSettings, tls_context

__all__ = ["NativeSender", "Plain"]

#: Bytes asked of the socket per read: a small response arrives with its head.
BLOCK_SIZE = 64 * 1024
#: Encoded header blocks (and TLS contexts) remembered, by their headers (a run has a few).
_HEADER_BLOCKS = 64
#: Bytes per read of a body nobody keeps (answers.py's lend_chunks).
SCRATCH_SIZE = 256 * 1024

# A header http.client sends as it is, which requests' path accepts too: a token name, and
# a latin-1 value without CR, LF or NUL that neither starts nor ends with white space.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_VALUE = re.compile(r"(?:[\x21-\x7e\xa0-\xff](?:[\x20-\x7e\xa0-\xff\t]*[\x21-\x7e\xa0-\xff])?)?\Z")
#: Headers whose absence (or presence) changes what urllib3 and http.client add.
_REQUIRED = frozenset({"user-agent", "accept-encoding"})
_REFUSED = frozenset({"host", "transfer-encoding"})

#: Plain: the parts of a plain URL (``urls.is_plain_url``) the native path needs.
Plain = tuple[str, str, int, str, str]


def split_plain_url(url: str) -> Plain:
    """``(scheme, host, port, Host header, path)`` of a plain URL.

    Example::

        >>> split_plain_url("http://[::1]:8080/a?b")
        ('http', '::1', 8080, '[::1]:8080', '/a?b')
        >>> split_plain_url("https://example.com:443/")
        ('https', 'example.com', 443, 'example.com', '/')
    """
    scheme, _, rest = url.partition("://")
    path_start = rest.index("/")
    netloc, path = rest[:path_start], rest[path_start:]
    default = 443 if scheme == "https" else 80
    if netloc.startswith("["):
        host, _, port_text = netloc[1:].partition("]")
        port_text = port_text[1:]
        shown = f"[{host}]"
    else:
        host, _, port_text = netloc.partition(":")
        shown = host
    port = int(port_text) if port_text else default
    return scheme, host, port, shown if port == default else f"{shown}:{port}", path


class NativeSender:
    """Sends plain requests over ``connections`` (the run's, held to its budget).

    Example::

        >>> sender = NativeSender(Connections(limit=4))
        >>> url = "http://127.0.0.1:8000/ok"
        >>> ready = sender.ready(url, {"User-Agent": "u", "Accept-Encoding": "gzip"},
        ...                      verify=True, cert=None)
        >>> response = sender.send("GET", url, *ready, body=None, timeout=5)
        >>> response.status_code, response.headers["Content-Type"]
        (200, 'text/plain; charset=utf-8')
        >>> sender.close()
    """

    def __init__(self, connections: Connections) -> None:
        self.connections = connections
        self._contexts = BoundedCache(_HEADER_BLOCKS)
        self._blocks = BoundedCache(_HEADER_BLOCKS)
        # Where the bodies of answers read with lend_chunks land. One per sender: its
        # greenlets take turns at it, and a reader is done with a chunk before it yields.
        self._scratch = memoryview(bytearray(SCRATCH_SIZE))

    def header_block(self, headers: dict[str, Any]) -> bytes | None:
        """The header lines after Host, as http.client would write them; None when they are
        not all plain (a value requests refuses or encodes differently, a header that
        changes what urllib3 adds): such a request takes requests' path."""
        key = tuple(headers.items())
        try:
            return self._blocks[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable value: not plain
            return None
        return self._blocks.remember(key, _encode_headers(headers))

    def tls_context(self, settings: TlsSettings) -> ssl.SSLContext | None:
        """The context for ``(verify, cert)``, None if it cannot be built (requests' path
        then says why, in its own words)."""
        context = self._contexts.get(settings, False)
        if context is False:
            try:
                context = tls_context(settings)
            except (OSError, ValueError, TypeError):
                context = None
            self._contexts.remember(settings, context)
        return context

    def ready(self, url: str, headers: dict[str, Any], verify: Any, cert: Any
              ) -> tuple[Plain, bytes, Any] | None:
        """What :meth:`send` takes for a request to ``url`` with the wire ``headers`` and
        TLS settings, or None when it is not one for the native path (a URL requests would
        change, headers not all plain, TLS settings that do not load)."""
        if not is_plain_url(url):
            return None
        block = self.header_block(headers)
        if block is None:
            return None
        context = None
        if url.startswith("https:"):
            try:
                context = self.tls_context((verify, cert))
            except TypeError:  # unhashable settings (a list for cert)
                return None
            if context is None:
                return None
        return split_plain_url(url), block, context

    def send(self, method: str, url: str, plain: Plain, block: bytes, context: Any,
             body: bytes | str | None, timeout: Any) -> requests.Response:
        """Send one request and read its head; raise what requests' path would raise.

        ``plain``, ``block`` and ``context`` come from :meth:`ready`; ``timeout`` is
        requests' (a number, a (connect, read) pair, or None).
        """
        scheme, host, port, host_header, path = plain
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        pool = self.connections.pool(scheme, host, port, context)
        head = b"%s %s HTTP/1.1\r\nHost: %s\r\n%s" % (
            method.encode("ascii"), path.encode("ascii"), host_header.encode("ascii"), block)
        data = body.encode("utf-8") if isinstance(body, str) else body
        if context is not None and context.verify_mode == ssl.CERT_NONE:
            warnings.warn(  # urllib3's warning, word for word, as requests' path gives it
                f"Unverified HTTPS request is being made to host '{host}'. Adding certificate "
                "verification is strongly advised. See: https://urllib3.readthedocs.io/en/"
                "latest/advanced-usage.html#tls-warnings", u3.InsecureRequestWarning,
                stacklevel=2)
        try:
            connection = self.connections.get(pool, connect, path)
        except (u3.HTTPError, OSError) as exc:
            raise _connect_error(exc)(exc, request=_sent(method, url, head, body)) from None
        connection.sent += 1
        attempt = SENT_ON.get()
        if attempt is not None:  # the last hop's connection is the one that counts
            attempt.reused = connection.sent > 1
        response_head = None
        failure: Exception | None = None
        try:
            connection.set_timeout(connect)
            try:
                connection.send(head + data if data else head)
            except OSError as exc:
                # urllib3 reads the answer of a server that closed while the request was
                # being sent (it may have answered already); anything else fails the request.
                if not isinstance(exc, BrokenPipeError) and exc.errno != errno.ECONNRESET:
                    raise _SendError(exc) from exc
            connection.set_timeout(read)
            response_head = ResponseHead(connection, method, BLOCK_SIZE)
            response_head.read_head()  # on failure, it has closed the connection or refused
        except (OSError, http.client.HTTPException) as exc:
            if response_head is None:
                connection.done(reusable=False)
            failure = exc
        except BaseException:  # the deadline, a cancel: not the connection's
            if response_head is None or response_head.refused:
                connection.done(reusable=False)
            raise
        if failure is None:
            return response_for(response_head, pool, method, url, path, self._scratch)
        if response_head is not None and response_head.refused:
            try:
                return read_by_http_client(connection, response_head.received, pool,
                                            method, url, path)
            except (OSError, http.client.HTTPException, u3.InvalidHeader) as verdict:
                failure = verdict
        # Raised outside the handlers, so the exception carries no llhttp context.
        raise _head_error(failure, pool, path, read, _sent(method, url, head, body))

    def close(self) -> None:
        """Close every idle connection."""
        self.connections.close()


def _encode_headers(headers: dict[str, Any]) -> bytes | None:
    names = set()
    lines = []
    for name, value in headers.items():
        if type(name) is not str or type(value) is not str or not _TOKEN.match(name) \
                or not _VALUE.match(value) or value == SKIP_HEADER:
            return None
        names.add(name.lower())
        lines.append(f"{name}: {value}\r\n")
    if not _REQUIRED <= names or names & _REFUSED:
        return None
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def _connect_error(exc: Exception) -> type[rex.RequestException]:
    """The exception requests' adapter raises for a connection urllib3 could not open
    (``Connections.get`` raises urllib3's exceptions for it, or an OSError)."""
    if isinstance(exc, u3.ReadTimeoutError):  # a TLS handshake that timed out
        return rex.ReadTimeout
    reason = getattr(exc, "reason", None)  # a MaxRetryError's
    if isinstance(reason, u3.ConnectTimeoutError) and not isinstance(reason,
                                                                     u3.NewConnectionError):
        return rex.ConnectTimeout
    if isinstance(reason, u3.SSLError):
        return rex.SSLError
    return rex.ConnectionError  # a refusal, a reset during the handshake


class _SendError(OSError):
    """The request could not be sent (``exc``): requests' path says "Connection aborted"."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(exc.errno, exc.strerror)
        self.exc = exc


def _head_error(exc: Exception, pool, path: str, read_timeout: Any,
                request: requests.PreparedRequest) -> rex.RequestException:
    """The requests exception for a failure between sending the request and the end of
    the response head, as requests' path raises it."""
    if isinstance(exc, u3.InvalidHeader):  # urllib3's verdict on the Content-Length
        return rex.InvalidHeader(exc, request=request)
    if isinstance(exc, TimeoutError):
        error = u3.ReadTimeoutError(pool.urllib3_pool, path,
                                    f"Read timed out. (read timeout={read_timeout})")
        return rex.ReadTimeout(error, request=request)
    if isinstance(exc, ssl.SSLError):  # urllib3 retries it, and runs out of retries
        error = u3.MaxRetryError(pool.urllib3_pool, path, u3.SSLError(exc))
        return rex.SSLError(error, request=request)
    if isinstance(exc, _SendError):
        exc = exc.exc
    elif isinstance(exc, HTTPConnectionClosed):
        if isinstance(exc.__context__, OSError):
            exc = exc.__context__  # a reset before the first byte
        else:
            exc = http.client.RemoteDisconnected("Remote end closed connection without "
                                                 "response")
    return rex.ConnectionError(u3.ProtocolError("Connection aborted.", exc), request=request)


def _sent(method: str, url: str, head: bytes, body: bytes | None) -> requests.PreparedRequest:
    """The PreparedRequest requests' path would have sent, for a failed send's exception.

    Built only when a send fails; its headers are the wire headers but Host, as a
    PreparedRequest's are.
    """
    request = requests.PreparedRequest()
    request.method = method
    request.url = url
    lines = head.decode("latin-1").split("\r\n")[2:]
    request.headers = CaseInsensitiveDict(line.split(": ", 1) for line in lines if line)
    request.body = body
    return request
