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
import socket
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

import gevent
import gevent.pool
import gevent.server

from .routes import PATTERN, ROUTES, TokenBucket, dispatch, pattern_chunks
from .wire import BadRequest, ClientGone, Connection, Request

if TYPE_CHECKING:  # importing ssl here would import it before the package has patched it
    import ssl

__all__ = ["PATTERN", "ROUTES", "Connection", "LoopbackServer", "Request", "pattern_bytes",
           "refused_url"]

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
        #: /page/<name>: the pages a test set (routes.Page), by name.
        self.pages: dict[str, Any] = {}

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
        except OSError:  # resets, broken pipes, TLS alerts, EOF mid-request (ClientGone)
            pass
        finally:
            self.open_connections -= 1
            sock.close()

    def _serve(self, conn: Connection) -> None:
        while conn.keep_alive:
            conn.method, conn.started = "GET", False  # so a 400 for a bad request has its body
            try:
                req = conn.read_request()
            except BadRequest as exc:
                conn.keep_alive = False
                conn.respond(400, f"bad request: {exc}\n".encode())
                return
            except ClientGone:
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
