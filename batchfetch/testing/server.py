"""A loopback HTTP/1.1 server for batchfetch's tests, your own tests, and the offline demo.

It is a small hand-written HTTP/1.1 parser on gevent's ``StreamServer`` (not pywsgi), so routes
can misbehave at the socket level (resets, trickles, garbage) and connections can be counted.
The routes are listed in ``ROUTES`` and live in ``batchfetch.testing.routes``.

The server runs in greenlets of the calling thread's hub, so the client must be cooperative:
use it from a gevent-patched process (importing ``batchfetch`` patches), as batchfetch does.

Example::

    >>> import requests
    >>> with LoopbackServer() as server:
    ...     requests.get(server.url("/status/404")).status_code
    404
"""

from __future__ import annotations

import collections
import re
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import gevent
import gevent.pool
import gevent.server

from .routes import PATTERN, ROUTES, TokenBucket, dispatch, pattern_chunks

if TYPE_CHECKING:  # importing ssl here would import it before the package has patched it
    import ssl

__all__ = ["PATTERN", "ROUTES", "Connection", "LoopbackServer", "Request", "pattern_bytes",
           "refused_url"]

_MAX_LINE = 64 * 1024
_MAX_HEADERS = 100
_MAX_BODY = 64 * 1024 * 1024  # bodies are held in memory for /echo; refuse what would hurt
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NO_BODY_STATUSES = (204, 304)
_YIELD_SECONDS = 1e-5  # any positive sleep waits for the next loop iteration, which polls I/O


def pattern_bytes(n: int) -> bytes:
    """Return the first ``n`` bytes that ``/bytes/<n>`` sends, to compare a download against.

    Example::

        >>> pattern_bytes(20)
        b'0123456789abcdef0123'
    """
    return b"".join(pattern_chunks(n))


def refused_url(path: str = "/") -> str:
    """A loopback URL whose port has nothing listening (bound, then closed): ``connect``.

    Example::

        >>> refused_url("/x").startswith("http://127.0.0.1:")
        True
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}{path}"


class _BadRequest(ValueError):
    """The client sent something we cannot parse: answered with 400, then the connection closes."""


class _ClientGone(ConnectionError):
    """The client closed its end while we were reading (caught with every other socket error)."""


@dataclass
class Request:
    """One parsed request: ``target`` is the raw request-target, headers keep their case."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    @property
    def path(self) -> str:
        """The target without its query string, e.g. ``"/status/404"``."""
        return self.target.partition("?")[0]

    @property
    def query_pairs(self) -> list[tuple[str, str]]:
        """Every query parameter in order, repeats included."""
        return parse_qsl(self.target.partition("?")[2], keep_blank_values=True)

    @property
    def query(self) -> dict[str, str]:
        """Query parameters as a flat dict; the last value of a repeated name wins."""
        return dict(self.query_pairs)

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies from the ``Cookie`` header, e.g. ``{"session": "abc"}``."""
        parts = (part.strip().partition("=") for part in self.header("cookie", "").split(";"))
        return {name: value for name, _, value in parts if name}

    def header(self, name: str, default: str = "") -> str:
        """Return the first header called ``name`` (any case), else ``default``."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), default)


class Connection:
    """One client connection: buffered reading, response writing, and deliberate faults."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.keep_alive = True
        self.method = "GET"  # of the request being answered: HEAD responses carry no body
        self.http10 = False
        self.started = False  # whether any byte of the current response has gone out
        self._buffer = bytearray()

    # -- reading ---------------------------------------------------------------------------

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise _ClientGone("client closed the connection")
        self._buffer += data

    def read_line(self) -> bytes:
        """Return the next line, ``\\r\\n`` included, refusing lines over 64 KiB."""
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > _MAX_LINE:
                raise _BadRequest("line too long")
            self._fill()
        line = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        return line

    def read_exact(self, n: int) -> bytes:
        """Return exactly ``n`` bytes, reading more from the socket as needed."""
        while len(self._buffer) < n:
            self._fill()
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def read_request(self) -> Request:
        """Parse one request (line, headers, body by Content-Length or chunked)."""
        line = self.read_line()
        if line in (b"\r\n", b"\n"):  # RFC 9112 2.2: tolerate a stray CRLF between requests
            line = self.read_line()
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or parts[2] not in (
            "HTTP/1.0", "HTTP/1.1"
        ):
            raise _BadRequest(f"bad request line {line[:100]!r}")
        headers = []
        while (line := self.read_line()) not in (b"\r\n", b"\n"):
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon or not _TOKEN.fullmatch(name) or len(headers) >= _MAX_HEADERS:
                raise _BadRequest(f"bad header line {line[:100]!r}")
            headers.append((name, value.strip()))
        req = Request(parts[0], parts[1], parts[2], headers)
        if req.header("expect").lower() == "100-continue":  # curl waits for this before a body
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in req.header("transfer-encoding").lower():
            req.body = self._read_chunked()
        elif length := req.header("content-length"):
            if not length.isdigit() or int(length) > _MAX_BODY:
                raise _BadRequest(f"bad or too large Content-Length {length!r}")
            req.body = self.read_exact(int(length))
        return req

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            size_line = self.read_line().split(b";")[0].strip()  # drop chunk extensions
            try:
                size = int(size_line, 16)
            except ValueError:
                raise _BadRequest(f"bad chunk size {size_line[:20]!r}") from None
            if size == 0:
                while self.read_line() not in (b"\r\n", b"\n"):  # skip any trailers
                    pass
                return bytes(body)
            if len(body) + size > _MAX_BODY:
                raise _BadRequest("chunked body too large")
            body += self.read_exact(size)
            self.read_line()  # the CRLF after each chunk

    # -- writing ---------------------------------------------------------------------------

    def respond(
        self,
        status: int,
        body: bytes | Iterable[bytes] = b"",
        *,
        content_type: str = "text/plain; charset=utf-8",
        headers: Iterable[tuple[str, str]] = (),
        length: int | None = None,
        chunked: bool = False,
    ) -> None:
        """Send a whole response; an iterable body is streamed and needs ``length`` or ``chunked``.

        ``length`` is what Content-Length promises; a route may send less on purpose.
        """
        if chunked and self.http10:  # HTTP/1.0 has no chunked coding: end the body by closing
            chunked = self.keep_alive = False
        lines = [f"HTTP/1.1 {status} {_reason(status)}", *(f"{k}: {v}" for k, v in headers)]
        has_body = status not in _NO_BODY_STATUSES
        if has_body:
            lines.append(f"Content-Type: {content_type}")
            declared = len(body) if isinstance(body, bytes) else length
            if chunked:
                lines.append("Transfer-Encoding: chunked")
            elif declared is not None:
                lines.append(f"Content-Length: {declared}")
        if not self.keep_alive:
            lines.append("Connection: close")
        elif self.http10:
            lines.append("Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.started = True
        if not has_body or self.method == "HEAD":
            self.sock.sendall(head)
        elif isinstance(body, bytes) and not chunked:
            self.sock.sendall(head + body)  # one write: no Nagle/delayed-ACK stall on keep-alive
        else:
            self.sock.sendall(head)
            for chunk in [body] if isinstance(body, bytes) else body:
                if chunked and chunk:
                    self.sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                elif chunk:
                    self.sock.sendall(chunk)
                # The client usually shares our hub and loopback sendall rarely blocks, so let
                # it read. Not sleep(0): that can resume us ~50 times before the hub polls for
                # I/O, and a gzip bomb then ran a second before the client saw its headers.
                gevent.sleep(_YIELD_SECONDS)
            if chunked:
                self.sock.sendall(b"0\r\n\r\n")

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are, HTTP or not."""
        self.started = True
        self.sock.sendall(data)

    # -- faults ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close cleanly (FIN); the connection serves no more requests."""
        self.keep_alive = False
        self.sock.close()

    def reset(self) -> None:
        """Close with a TCP RST: SO_LINGER on with a zero timeout makes close() abort."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def wait_for_close(self) -> None:
        """Read and discard until the client closes, then close our end too."""
        try:
            while self.sock.recv(65536):
                pass
        finally:
            self.close()


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class LoopbackServer:
    """An HTTP/1.1 (or HTTPS) server on a free loopback port, with the routes in ``ROUTES``.

    Parameters:
        host: address to bind; the default stays on this machine.
        port: port to bind; 0 picks a free one (read it back from ``port``).
        ssl_context: a server-side ``ssl.SSLContext`` with a certificate loaded; serves HTTPS.

    Counters (plain attributes, reset by ``reset_counters``): ``connections_accepted``,
    ``requests_served``, ``hits`` (path -> requests) and ``flaky_counts`` (key -> requests).
    ``open_connections`` is a gauge and ``errors`` lists unexpected route exceptions (each
    answered with a 500 instead of a printed traceback); neither is reset.

    Example::

        >>> import requests
        >>> with LoopbackServer() as server:
        ...     session = requests.Session()
        ...     codes = [session.get(server.url("/flaky/a?fail=1")).status_code for _ in "12"]
        ...     session.close()
        >>> codes, server.connections_accepted, server.hits["/flaky/a"]
        ([503, 200], 1, 2)
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.scheme = "https" if ssl_context is not None else "http"
        self.open_connections = 0
        self.errors: list[Exception] = []
        self._server: gevent.server.StreamServer | None = None
        self._handlers = gevent.pool.Group()
        self.reset_counters()

    def reset_counters(self) -> None:
        """Zero ``connections_accepted``, ``requests_served``, ``hits``, ``flaky_counts`` and
        ``limited`` (the token buckets of ``/limited/<key>`` and their counts) and
        ``backends`` (``/busy/<key>``)."""
        self.connections_accepted = 0
        self.requests_served = 0
        self.hits: collections.Counter[str] = collections.Counter()
        self.flaky_counts: collections.Counter[str] = collections.Counter()
        self.limited: dict[str, TokenBucket] = {}
        #: /busy/<key>: [its workers (a Semaphore), requests there now, most there at once,
        #: requests there as each arrived]
        self.backends: dict[str, list] = {}

    @property
    def base_url(self) -> str:
        """``scheme://host:port`` with no trailing slash, e.g. ``http://127.0.0.1:54321``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def url(self, path: str) -> str:
        """Return the absolute URL of ``path`` (``"/x"`` and ``"x"`` both give ``base_url/x``)."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def start(self) -> LoopbackServer:
        """Bind, start accepting in the current hub, and return ``self`` (``port`` is now set)."""
        if self._server is not None:
            raise RuntimeError("LoopbackServer is already started")
        self._server = gevent.server.StreamServer(
            (self.host, self.port), self._handle, spawn=self._handlers.spawn
        )  # a bound method, not the Group itself: StreamServer wants a Pool's semaphore
        self._server.start()
        self.port = self._server.server_port
        return self

    def stop(self) -> None:
        """Close the listener and every client connection, ending all handlers. Idempotent."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        self._handlers.kill(block=True, timeout=2)  # their finally blocks close their sockets

    def wait_idle(self, timeout: float = 2.0) -> bool:
        """Wait until no client connection is open; return False if ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while self.open_connections:
            if time.monotonic() >= deadline:
                return False
            gevent.sleep(0.005)
        return True

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _handle(self, sock: socket.socket, address: tuple[str, int]) -> None:
        # Everything is caught here: gevent would print any escaping exception via
        # hub.handle_error, and clients going away (or rejecting our certificate) is normal.
        self.connections_accepted += 1
        self.open_connections += 1
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock = _wrap_tls(sock, self.ssl_context)
            self._serve(Connection(sock))
        except OSError:  # resets, broken pipes, TLS alerts, EOF mid-request (_ClientGone)
            pass
        finally:
            self.open_connections -= 1
            sock.close()

    def _serve(self, conn: Connection) -> None:
        while conn.keep_alive:
            conn.method, conn.started = "GET", False  # so a 400 for a bad request has its body
            try:
                req = conn.read_request()
            except _BadRequest as exc:
                conn.keep_alive = False
                conn.respond(400, f"bad request: {exc}\n".encode())
                return
            except _ClientGone:
                return  # between requests this is how keep-alive ends
            self.requests_served += 1
            self.hits[req.path] += 1
            connection = req.header("connection").lower()
            conn.method = req.method
            conn.http10 = req.version == "HTTP/1.0"
            conn.keep_alive = "close" not in connection and (
                not conn.http10 or "keep-alive" in connection
            )
            self._answer(conn, req)

    def _answer(self, conn: Connection, req: Request) -> None:
        try:
            dispatch(self, conn, req)
        except OSError:
            raise
        except Exception as exc:
            # A ValueError is a bad query parameter or path number; anything else is a bug in a
            # route, recorded and answered rather than printed.
            status = 400 if isinstance(exc, ValueError) else 500
            if status == 500:
                self.errors.append(exc)
            conn.keep_alive = False
            if not conn.started:  # else the response is half sent: closing is all we can do
                conn.respond(status, f"{type(exc).__name__}: {exc}\n".encode())


def _wrap_tls(sock: socket.socket, context: ssl.SSLContext) -> socket.socket:
    """Do the server side of a TLS handshake on ``sock``; raise ``ssl.SSLError`` if it fails."""
    import gevent.ssl

    # gevent's SSLSocket whatever the context's class: a context made before monkey-patching
    # would wrap into a blocking stdlib socket and freeze every greenlet during the handshake.
    tls = gevent.ssl.SSLSocket(
        sock=sock, server_side=True, do_handshake_on_connect=False, _context=context
    )
    try:
        tls.do_handshake()
    except BaseException:
        tls.close()  # it owns the file descriptor now, not ``sock``
        raise
    return tls
