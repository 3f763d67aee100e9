"""The native transport's connections: opened as urllib3 opens them (the same address
lookup, socket options and TLS settings, the same exceptions when that fails), kept alive
per origin, and held to one run-wide budget that urllib3's connections on requests' path
count against too (``tracked.py``).

The budget is what keeps a run over many hosts within its concurrency: a pool per host
that keeps its idle connections (urllib3's, under requests) lets a run of 200 requests in
flight over 250 hosts hold 300 connections. Here, opening a connection when ``limit`` are
open first closes the connection idle longest, whatever its host and whichever path
opened it, as aiohttp's connector does.
"""
from __future__ import annotations

import contextvars
import os
import select
import socket
import ssl
from collections import OrderedDict
from typing import Any

import urllib3.exceptions as u3
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.connection import create_connection
from urllib3.util.ssl_ import create_urllib3_context, ssl_wrap_socket

__all__ = ["SENT_ON", "Connection", "Connections", "SentOn", "TlsSettings", "tls_context"]


class SentOn:
    """What the connections that carry one attempt report on it: ``reused``, did the
    connection of its last hop carry a request before?"""

    __slots__ = ("reused",)

    def __init__(self) -> None:
        self.reused = False


#: The attempt being sent in this greenlet. Set by the transport around each attempt
#: (``RequestsTransport.attempt``); gevent gives every greenlet its own context, so
#: concurrent attempts never see each other's.
SENT_ON: contextvars.ContextVar[SentOn | None] = contextvars.ContextVar(
    "batchfetch_sent_on", default=None)

#: urllib3's HTTPConnection.default_socket_options.
_SOCKET_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]

#: Origins remembered; past this many, those without idle connections are forgotten.
_POOLS_KEPT = 4096

#: ``(verify, cert)`` as requests takes them: verify True, False or a CA path; cert None,
#: a path or a (cert, key) pair.
TlsSettings = tuple[Any, Any]


def tls_context(settings: TlsSettings) -> ssl.SSLContext:
    """The SSLContext requests' adapter and urllib3 would verify with, built once.

    Raises OSError for a CA bundle or certificate that is not there (requests' own
    words), ssl.SSLError for one that does not load.

    Example::

        >>> tls_context((True, None)).verify_mode == ssl.CERT_REQUIRED
        True
    """
    verify, cert = settings
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED if verify else ssl.CERT_NONE)
    if verify:
        location = DEFAULT_CA_BUNDLE_PATH if verify is True else verify
        if not location or not os.path.exists(location):
            raise OSError("Could not find a suitable TLS CA certificate bundle, invalid path: "
                          f"{location}")
        if os.path.isdir(location):
            context.load_verify_locations(capath=location)
        else:
            context.load_verify_locations(cafile=location)
        context.check_hostname = True
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert:
        cert_file, key_file = (cert, None) if isinstance(cert, str) else cert
        for what, path in (("certificate", cert_file), ("key", key_file)):
            if path and not os.path.exists(path):
                raise OSError(f"Could not find the TLS {what} file, invalid path: {path}")
        # An encrypted key would make OpenSSL ask for its passphrase on the terminal:
        # refused here, so requests' path says "password is required" instead.
        context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
    return context


def _no_passphrase() -> bytes:
    raise ValueError("the client key is encrypted")


class Connection:
    """One open socket, the pool it goes back to, and how many requests it carried."""

    __slots__ = ("sock", "pool", "sent", "timeout", "_poll")

    def __init__(self, sock: socket.socket, pool: _OriginPool) -> None:
        self.sock = sock
        self.pool = pool
        self.sent = 0
        self.timeout: float | None = None
        self._poll: Any = None

    def dropped(self) -> bool:
        """Has the server closed it (or sent bytes nobody asked for) while it was idle?

        urllib3's check before reusing a connection, with one poll object per connection
        instead of one per check.
        """
        if self._poll is None:
            self._poll = select.poll()
            self._poll.register(self.sock, select.POLLIN)
        return bool(self._poll.poll(0))

    def send(self, data: bytes) -> None:
        """Send all of ``data``: one ``send`` for a request that fits the socket's buffer,
        where gevent's ``sendall`` first asks the kernel for the buffer's size."""
        sent = self.sock.send(data)
        if sent < len(data):
            self.sock.sendall(memoryview(data)[sent:])

    def set_timeout(self, seconds: float | None) -> None:
        if seconds != self.timeout:
            self.sock.settimeout(seconds)
            self.timeout = seconds

    def done(self, reusable: bool) -> None:
        """The response on it is over: keep it for the next request, or close it."""
        self.pool.connections.put_back(self, reusable)

    def evict(self) -> None:
        """Close it while idle, to make room for another (the budget has let go of it)."""
        self.pool.idle.remove(self)
        self.pool.connections._close(self)


class _OriginPool:
    """The idle connections of one origin (most recently used last) and how to open more."""

    __slots__ = ("connections", "key", "scheme", "host", "port", "context", "idle",
                 "_urllib3_pool")

    def __init__(self, connections: Connections, key: Any, scheme: str, host: str, port: int,
                 context: ssl.SSLContext | None) -> None:
        self.connections = connections
        self.key = key
        self.scheme = scheme
        self.host = host
        self.port = port
        self.context = context
        self.idle: list[Connection] = []
        self._urllib3_pool: Any = None

    @property
    def urllib3_pool(self) -> HTTPConnectionPool:
        """An unused urllib3 pool for this origin: the name urllib3's exceptions give it."""
        if self._urllib3_pool is None:
            pool_class = HTTPSConnectionPool if self.scheme == "https" else HTTPConnectionPool
            self._urllib3_pool = pool_class(self.host, self.port)
        return self._urllib3_pool

    def open(self, connect_timeout: float | None, target: str) -> Connection:
        """A new connection, or urllib3's exception for why there is none (``target``, the
        request's path, is what urllib3 names in it)."""
        try:
            try:
                sock = create_connection((self.host, self.port), connect_timeout,
                                         socket_options=_SOCKET_OPTIONS)
            except socket.gaierror as exc:
                raise u3.NameResolutionError(self.host, self._connection(connect_timeout),
                                             exc) from exc
            except TimeoutError as exc:
                raise u3.ConnectTimeoutError(
                    self._connection(connect_timeout), f"Connection to {self.host} timed out. "
                    f"(connect timeout={connect_timeout})") from exc
            except OSError as exc:
                raise u3.NewConnectionError(self._connection(connect_timeout),
                                            f"Failed to establish a new connection: {exc}"
                                            ) from exc
            if self.context is not None:
                try:
                    sock = ssl_wrap_socket(sock, ssl_context=self.context,
                                           server_hostname=self.host)
                except TimeoutError as exc:
                    sock.close()
                    raise u3.ReadTimeoutError(self.urllib3_pool, target, "Read timed out. "
                                              f"(read timeout={connect_timeout})") from exc
                except (ssl.SSLError, ssl.CertificateError) as exc:
                    sock.close()
                    raise u3.SSLError(exc) from exc
                except OSError as exc:  # a reset during the handshake
                    sock.close()
                    raise u3.ProtocolError("Connection aborted.", exc) from exc
                except BaseException:  # the deadline, a cancel
                    sock.close()
                    raise
        except (u3.NewConnectionError, u3.ConnectTimeoutError, u3.SSLError) as exc:
            raise u3.MaxRetryError(self.urllib3_pool, target, exc) from exc
        connection = Connection(sock, self)
        connection.timeout = connect_timeout
        return connection

    def _connection(self, timeout: float | None) -> Any:
        """What urllib3 names as the connection in its exceptions."""
        return self.urllib3_pool.ConnectionCls(self.host, self.port, timeout=timeout)


class Connections:
    """Every connection of one run: a pool of idle native ones per origin, and at most
    ``limit`` open in all (None: no limit), counting those of requests' path.

    Anything that holds a connection can join the budget: it calls :meth:`opening` before
    it connects and :meth:`closed` once closed, and while it is :meth:`idle` the budget may
    call its ``evict()`` (close it) to make room for another.

    Example::

        >>> from urllib.parse import urlsplit
        >>> origin = urlsplit("http://127.0.0.1:8000/")
        >>> connections = Connections(limit=2)
        >>> pool = connections.pool("http", origin.hostname, origin.port, None)
        >>> connection = connections.get(pool, 5, "/ok")
        >>> connections.open
        1
        >>> connection.done(reusable=True)
        >>> connections.get(pool, 5, "/ok") is connection   # kept alive, then reused
        True
        >>> connections.close()
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.open = 0
        self._pools: dict[Any, _OriginPool] = {}
        #: Idle connections of every origin and both paths, longest idle first.
        self._idle: OrderedDict[Any, None] = OrderedDict()

    def pool(self, scheme: str, host: str, port: int,
             context: ssl.SSLContext | None) -> _OriginPool:
        """The pool of one origin (with one TLS context), made on first use."""
        key = (scheme, host, port, id(context))
        pool = self._pools.get(key)
        if pool is None:
            if len(self._pools) >= _POOLS_KEPT:  # a run over many hosts: forget the unused
                self._pools = {key: kept for key, kept in self._pools.items() if kept.idle}
            pool = self._pools[key] = _OriginPool(self, key, scheme, host, port, context)
        return pool

    def get(self, pool: _OriginPool, connect_timeout: float | None, target: str) -> Connection:
        """An idle connection of ``pool``'s origin the server has not closed, else a new one."""
        idle = pool.idle
        while idle:
            connection = idle.pop()
            del self._idle[connection]
            if not connection.dropped():
                return connection
            self._close(connection)  # closed by the server, or sent unasked-for bytes
        self.opening()
        try:
            return pool.open(connect_timeout, target)
        except BaseException:
            self.open -= 1
            raise

    def opening(self) -> None:
        """Count a connection about to open (counted while it connects, so others may not
        take its place), first closing the longest idle while ``limit`` are open."""
        self.open += 1
        self.trim()

    def idle(self, member: Any) -> None:
        """``member`` waits for its next request: the budget may close it to make room."""
        self._idle[member] = None
        self.trim()  # over a lowered limit, the longest idle goes

    def trim(self) -> None:
        """Close the longest idle connections while more than ``limit`` are open: to make
        room for one being opened, or after lowering the limit (as the others come free,
        the longest idle keep closing until no more than ``limit`` are open)."""
        while self.limit is not None and self.open > self.limit and self._idle:
            longest_idle, _ = self._idle.popitem(last=False)
            longest_idle.evict()

    def busy(self, member: Any) -> None:
        """``member`` carries a request: not to be closed for room."""
        self._idle.pop(member, None)

    def closed(self, member: Any) -> None:
        """``member``, counted by :meth:`opening`, is closed."""
        self.open -= 1
        self._idle.pop(member, None)

    def put_back(self, connection: Connection, reusable: bool) -> None:
        """Keep ``connection`` for its origin's next request, or close it."""
        if reusable and self._pools.get(connection.pool.key) is connection.pool:
            connection.pool.idle.append(connection)
            self._idle[connection] = None
            self.trim()  # over a lowered limit, the longest idle goes
        else:
            self._close(connection)

    def _close(self, connection: Connection) -> None:
        self.open -= 1
        try:
            connection.sock.close()
        except OSError:
            pass

    def close(self) -> None:
        """Close every idle connection; those in use close when their response ends."""
        while self._idle:
            member, _ = self._idle.popitem(last=False)
            member.evict()
        self._pools.clear()
