"""The loopback server's side of HTTP/1.1: a parsed :class:`Request`, and the
:class:`Connection` that reads requests and answers them (or misbehaves on purpose).
"""
from __future__ import annotations

import re
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qsl

import gevent

__all__ = ["BadRequest", "ClientGone", "Connection", "Request"]

_MAX_LINE = 64 * 1024
_MAX_HEADERS = 100
_MAX_BODY = 64 * 1024 * 1024  # bodies are held in memory for /echo; refuse what would hurt
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NO_BODY_STATUSES = (204, 304)
_YIELD_SECONDS = 1e-5  # any positive sleep waits for the next loop iteration, which polls I/O



class BadRequest(ValueError):
    """The client sent something we cannot parse: answered with 400, then the connection closes."""


class ClientGone(ConnectionError):
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
            raise ClientGone("client closed the connection")
        self._buffer += data

    def read_line(self) -> bytes:
        """Return the next line, ``\\r\\n`` included, refusing lines over 64 KiB."""
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > _MAX_LINE:
                raise BadRequest("line too long")
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
            raise BadRequest(f"bad request line {line[:100]!r}")
        headers = []
        while (line := self.read_line()) not in (b"\r\n", b"\n"):
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon or not _TOKEN.fullmatch(name) or len(headers) >= _MAX_HEADERS:
                raise BadRequest(f"bad header line {line[:100]!r}")
            headers.append((name, value.strip()))
        req = Request(parts[0], parts[1], parts[2], headers)
        if req.header("expect").lower() == "100-continue":  # curl waits for this before a body
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in req.header("transfer-encoding").lower():
            req.body = self._read_chunked()
        elif length := req.header("content-length"):
            if not length.isdigit() or int(length) > _MAX_BODY:
                raise BadRequest(f"bad or too large Content-Length {length!r}")
            req.body = self.read_exact(int(length))
        return req

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            size_line = self.read_line().split(b";")[0].strip()  # drop chunk extensions
            try:
                size = int(size_line, 16)
            except ValueError:
                raise BadRequest(f"bad chunk size {size_line[:20]!r}") from None
            if size == 0:
                while self.read_line() not in (b"\r\n", b"\n"):  # skip any trailers
                    pass
                return bytes(body)
            if len(body) + size > _MAX_BODY:
                raise BadRequest("chunked body too large")
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
