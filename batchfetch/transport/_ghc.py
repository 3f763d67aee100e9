"""What the native transport takes from geventhttpclient, checked once at import.

geventhttpclient's response classes wrap llhttp, a C parser, and read from a gevent socket.
batchfetch uses them below its own connections and request writing (``native.py``), so it
relies on a few of their parts that geventhttpclient does not document: the parser
callbacks ``_on_header_field`` / ``_on_header_value`` (to cap header sizes as http.client
does), ``feed`` and ``message_complete`` (to read a body followed by stray bytes as requests
does), and ``_sock`` / ``release`` (to hand the connection back). setup.cfg bounds
geventhttpclient to the versions the tests cover; :data:`PROBLEMS` lists what is missing in
the one installed, and when it is not empty, every request takes requests' own path.
"""
from __future__ import annotations

import http.client
import warnings
from collections import deque
from typing import Any

__all__ = ["PROBLEMS", "HTTPConnectionClosed", "HTTPParseError", "ResponseHead",
           "find_problems"]

#: http.client's limits (private there: _MAXLINE, _MAXHEADERS), which requests' path
#: enforces on every response: a response over them is a protocol error on both paths.
MAX_LINE = 65536
MAX_HEADERS = 100

try:
    import geventhttpclient
    from geventhttpclient.response import (HTTPConnectionClosed, HTTPParseError,
                                           HTTPResponse, HTTPSocketResponse)
except ImportError as exc:  # not installed, or a version without these
    geventhttpclient = None
    HTTPParseError = HTTPConnectionClosed = http.client.HTTPException  # type: ignore[misc]
    HTTPResponse = object  # type: ignore[misc,assignment]
    HTTPSocketResponse = object  # type: ignore[misc,assignment]
    _IMPORT_PROBLEM = f"geventhttpclient is not importable ({exc})"
else:
    _IMPORT_PROBLEM = ""

_RELIED_ON = ("_on_status", "_on_body", "_on_message_complete",
              "_on_headers_complete", "_on_message_begin", "get_http_version", "feed",
              "release", "_read_headers", "should_close", "get_code",
              "get_remaining_content_length")


def find_problems() -> list[str]:
    """What the native transport relies on and the installed geventhttpclient lacks.

    Example::

        >>> find_problems()
        []
    """
    if _IMPORT_PROBLEM:
        return [_IMPORT_PROBLEM]
    version = tuple(int(part) for part in geventhttpclient.__version__.split(".")[:2])
    problems = []
    if not (2, 6) <= version < (2, 7):
        problems.append(f"geventhttpclient {geventhttpclient.__version__} is not 2.6")
    missing = [name for name in _RELIED_ON if not callable(getattr(HTTPSocketResponse, name,
                                                                     None))]
    if not isinstance(getattr(HTTPResponse(), "_header_position", None), int):
        missing.append("_header_position")
    if missing:
        problems.append(f"geventhttpclient's response lacks {', '.join(missing)}")
    return problems


class ResponseHead(HTTPSocketResponse):  # type: ignore[misc,valid-type]
    """A response read from ``connection``'s socket by llhttp: the head on ``read_head``,
    the body on ``read``. When the message ends (or the response is released early) the
    connection goes back to its pool (``connection.done(reusable)``).

    Five things differ from geventhttpclient's own response: the rest of a body with a
    Content-Length is read straight from the socket, without llhttp's copies; and four
    more, each to answer as requests'
    path answers: a reason cut between reads is kept whole; bytes after a complete message
    (a body longer than its Content-Length) close the connection instead of failing the
    response; the bytes of the head are kept (``received``), so a head llhttp refuses can
    be read by http.client instead (``answers.py``); and a head over 64 KiB or 100 headers
    is refused, so http.client applies its limits to it (geventhttpclient has none).
    """

    def __init__(self, connection: Any, method: str, block_size: int) -> None:
        self._connection = connection
        self._ended = False
        self._chunks: deque[bytearray] = deque()  # body bytes parsed and not read yet
        self._buffered = 0
        #: Body bytes still to come, read straight from the socket (a Content-Length body
        #: after its head), or None while llhttp reads.
        self._left: int | None = None
        #: What arrived until the head was complete.
        self.received = bytearray()
        #: The server closed the connection (a read returned no bytes).
        self.at_eof = False
        #: llhttp refused the head: the connection stays open for http.client to read it.
        self.refused = False
        self._reading = False  # geventhttpclient reads the head in __init__: see read_head
        super().__init__(connection.sock, block_size=block_size, method=method)

    def _read_headers(self, pre_buffered: bytes = b"") -> None:
        if self._reading:
            super()._read_headers(pre_buffered)

    def read_head(self) -> None:
        """Read up to the end of the head (the rest of the first read is the body's).

        When llhttp refuses the head, ``refused`` is set and the connection stays open.
        """
        self._reading = True
        try:
            self._read_headers()
        except HTTPParseError as exc:
            self.refused = not isinstance(exc, HTTPConnectionClosed)
            if not self.refused:
                self.release()
            raise
        finally:
            self._reading = False
        if not self.message_complete and self.get_remaining_content_length() > 0 and \
                "transfer-encoding" not in self:
            # The rest of a Content-Length body needs no parsing: read it as it comes,
            # one copy of each byte where llhttp's buffer would take three more.
            self._left = self.get_remaining_content_length()

    def remaining(self) -> int:
        """Body bytes the Content-Length still promises."""
        return self.get_remaining_content_length() if self._left is None else self._left

    def _on_body(self, data: bytearray) -> None:
        self._chunks.append(data)
        self._buffered += len(data)

    def read(self, amount: int | None = None) -> bytes:  # noqa: D102 - geventhttpclient API
        """Up to ``amount`` body bytes (all of the rest with None); b"" at the end."""
        if self._chunks or self._left is None:
            return self._read_parsed(amount)
        if not self._left or self._sock is None:
            return b""
        try:
            data = self._sock.recv(min(amount or self.block_size, self._left))
        except BaseException:
            self.release()
            raise
        self._took(len(data))
        return data

    def read_over(self, scratch: memoryview) -> bytes | memoryview:
        """Like ``read(len(scratch))`` for a body nobody keeps: from the socket, the bytes
        land in ``scratch`` (no new object per read; the next read overwrites them)."""
        if self._chunks or self._left is None:
            return self._read_parsed(len(scratch))
        if not self._left or self._sock is None:
            return b""
        if len(scratch) > self._left:
            scratch = scratch[:self._left]
        try:
            count = self._sock.recv_into(scratch)
        except BaseException:
            self.release()
            raise
        self._took(count)
        return scratch[:count]

    def _took(self, count: int) -> None:
        if not count:
            self.at_eof = True
            self.release()
            raise HTTPParseError("Incomplete response.")  # llhttp's words for it
        self._left -= count
        if not self._left:
            self.message_complete = self._ended = True
            self.release()

    def _read_parsed(self, amount: int | None) -> bytes:
        try:
            while self._sock is not None and not self.message_complete and \
                    self._left is None and (amount is None or self._buffered < amount):
                self.feed(self._sock.recv(self.block_size))  # the rest waits in _chunks
        except BaseException:
            self.release()
            raise
        chunks = self._chunks
        if amount is None or self._buffered <= amount:
            data = b"".join(chunks)
            chunks.clear()
            self._buffered = 0
            return data
        taken, missing = [], amount
        while missing:
            chunk = chunks[0]
            if len(chunk) <= missing:
                taken.append(chunks.popleft())
                missing -= len(chunk)
            else:
                taken.append(chunk[:missing])
                chunks[0] = chunk[missing:]
                missing = 0
        self._buffered -= amount
        return b"".join(taken)

    def _on_headers_complete(self) -> Any:
        result = super()._on_headers_complete()
        if self._header_position > MAX_HEADERS + 1:  # http.client says how many is too many
            raise HTTPParseError(f"more than {MAX_HEADERS} headers")
        if 100 < self.get_code() < 200:  # http.client skips 100 only: a 103 is the answer
            raise HTTPParseError(f"interim response {self.get_code()}")
        if self.get_http_version() not in ("HTTP/1.1", "HTTP/1.0"):
            raise HTTPParseError(f"{self.get_http_version()} is not HTTP/1")
        return result

    def _on_message_begin(self) -> None:
        if self._ended:  # stop before the parser forgets this message's headers
            raise HTTPParseError("bytes after the end of the message")
        self.status_message = None  # a final response after an interim one has its own
        self._header_position = 1
        super()._on_message_begin()

    def _on_status(self, string: str) -> None:
        # llhttp gives a reason cut between reads in pieces; geventhttpclient keeps the last
        self.status_message = (self.status_message or "") + string

    def _on_message_complete(self) -> None:
        # geventhttpclient releases the connection here; this waits for the end of feed,
        # which may find bytes after the message.
        self.message_complete = True
        self._ended = self.get_code() >= 200

    def feed(self, data: bytes) -> None:  # noqa: D102 - geventhttpclient API
        if self._reading:  # the head, interim ones included, and what came with it
            self.received += data
            if len(self.received) > MAX_LINE:  # http.client says which line is too long
                self.refused = self._reading
                raise HTTPParseError(f"a head over {MAX_LINE} bytes")
        if not data:
            self.at_eof = True
        try:
            super().feed(data)
        except HTTPParseError:
            if not self._ended:
                self.refused = self._reading  # read_head decides
                raise
            # The message ended inside this chunk and the rest is not a response:
            # requests' path reads the body and drops the connection; so does this.
            self._trailing_data_dropped = True
        if self._ended:
            self.release()

    def should_close(self) -> bool:  # noqa: D102 - geventhttpclient API
        return self.at_eof or super().should_close()

    def release(self) -> None:  # noqa: D102 - geventhttpclient API
        if self.refused:
            return  # native.py reads on, or closes the connection
        connection, self._sock = (self._connection if self._sock is not None else None), None
        if connection is not None:
            self._connection = None
            connection.done(reusable=not self.should_close())

    def __del__(self) -> None:
        if self._sock is not None:
            self.release()


#: Empty when the native transport can run; otherwise what it would miss.
PROBLEMS = find_problems()
if PROBLEMS and not _IMPORT_PROBLEM:
    warnings.warn(f"batchfetch: the native transport is off ({'; '.join(PROBLEMS)}); every "
                  "request takes requests' own path (same bytes, more CPU). See setup.cfg "
                  "for the geventhttpclient versions batchfetch was tested with.",
                  RuntimeWarning, stacklevel=2)
