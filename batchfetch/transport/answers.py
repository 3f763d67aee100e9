"""The native transport's answers: a requests.Response around what llhttp read, as
requests' adapter would build it, with the body behind an object that reads and fails as
urllib3's HTTPResponse does (urllib3's own, when the body needs decoding), and http.client
reading the heads llhttp refuses.
"""
from __future__ import annotations

import http.client
import io
import ssl
from collections.abc import Iterator
from typing import Any

import requests
import urllib3
import urllib3.exceptions as u3
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3 import HTTPHeaderDict

from ._ghc import HTTPParseError, ResponseHead

__all__ = ["read_by_http_client", "response_for"]


class _Body:
    """The file a urllib3 HTTPResponse reads the body from: llhttp's decoded framing.

    An early end (fewer bytes than Content-Length, a cut chunked body) reads as the end
    of the file, where urllib3 raises the IncompleteRead requests' path raises. It is also
    the response's ``_original_response``, the http.client response whose ``msg`` requests
    reads Set-Cookie headers from along a redirect chain.
    """

    __slots__ = ("head", "closed", "chunked", "delivered", "cut")

    def __init__(self, head: ResponseHead, chunked: bool) -> None:
        self.head = head
        self.closed = False
        self.chunked = chunked
        #: Body bytes read so far; with ``cut``, ``(delivered, remaining)`` of a short body.
        self.delivered = 0
        self.cut: tuple[int, int] | None = None

    @property
    def msg(self) -> _Body:
        return self

    def get_all(self, name: str, default: Any = None) -> Any:
        name = name.lower()
        return [value for key, value in self.head.items() if key.lower() == name] or default

    def read(self, amount: int | None = None) -> bytes:
        return self._next(self.head.read, amount)

    def read_over(self, scratch: memoryview) -> bytes | memoryview:
        """``read(len(scratch))``, with what comes from the socket landing in ``scratch``."""
        return self._next(self.head.read_over, scratch)

    def _next(self, read_part: Any, argument: Any) -> Any:
        try:
            data = read_part(argument)
        except HTTPParseError as exc:
            self.close()
            if "Incomplete" not in str(exc):
                raise http.client.HTTPException(str(exc)) from None
            remaining = self.head.remaining()
            data = read_part(argument)  # what arrived before the end, if any
            if self.chunked:  # urllib3 counts no length: say it as http.client would
                raise http.client.IncompleteRead(data, remaining) from None
            self.cut = (self.delivered + len(data), remaining)
        if not data:
            self.closed = True
        self.delivered += len(data)
        return data

    def isclosed(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True
        self.head.release()


class _PlainRaw:
    """``response.raw`` for a body that needs no decoding: it reads and fails as urllib3's
    HTTPResponse reads and fails (its ``_error_catcher`` and Content-Length check, held
    to that by tests/test_parity_errors.py), for a fraction of its cost."""

    __slots__ = ("_body", "_pool", "_original_response", "_scratch", "_lent", "headers",
                 "status", "reason", "version")

    def __init__(self, body: _Body, pool: Any, headers: CaseInsensitiveDict, status: int,
                 reason: str, version: int, scratch: memoryview) -> None:
        self._body = body
        self._pool = pool
        self._original_response = body  # for requests' cookie extraction
        self._scratch = scratch
        self._lent = False
        self.headers = headers
        self.status = status
        self.reason = reason
        self.version = version

    @property
    def closed(self) -> bool:
        return self._body.closed

    def header_items(self) -> list[tuple[str, str]]:
        """Every header line of the answer, a repeated header's one by one, in order."""
        return list(self._body.head.items())

    def lend_chunks(self) -> int:
        """The caller keeps no chunk past the next one: from now on ``stream`` yields views
        of the sender's scratch buffer, each overwritten by the next read. Returns the
        largest chunk it can lend. No new object per chunk and, in 256 KiB steps, a quarter
        of the reads: W7 (1 MiB bodies) took 0.33 s in 64 KiB bytes, 0.22 s this way."""
        self._lent = True
        return len(self._scratch)

    def stream(self, amount: int | None = 2 ** 16, decode_content: bool | None = None
               ) -> Iterator[bytes | memoryview]:
        if self._lent:
            scratch = self._scratch[:amount] if amount else self._scratch
            while data := self._checked(self._body.read_over, scratch):
                yield data
            return
        while data := self.read(amount):
            yield data

    def read(self, amount: int | None = None, decode_content: bool | None = None,
             cache_content: bool = False) -> bytes:
        return self._checked(self._body.read, amount)

    def _checked(self, read_part: Any, argument: Any) -> Any:
        body = self._body
        try:
            data = read_part(argument)
        except TimeoutError as exc:
            raise u3.ReadTimeoutError(self._pool, None, "Read timed out.") from exc
        except ssl.SSLError as exc:
            if "read operation timed out" in str(exc):
                raise u3.ReadTimeoutError(self._pool, None, "Read timed out.") from exc
            raise u3.SSLError(exc) from exc
        except (http.client.HTTPException, OSError) as exc:
            raise u3.ProtocolError(f"Connection broken: {exc!r}", exc) from exc
        if not data and body.cut is not None and body.cut[1]:
            short = u3.IncompleteRead(*body.cut)
            raise u3.ProtocolError(f"Connection broken: {short!r}", short)
        return data

    def close(self) -> None:
        self._body.close()

    def release_conn(self) -> None:
        pass


def response_for(head: ResponseHead, pool: Any, method: str, url: str, path: str,
                 scratch: memoryview) -> requests.Response:
    """The requests.Response requests' adapter would build for ``head`` (``pool``: the
    origin's, for the names in urllib3's exceptions; ``scratch``: where lent chunks land)."""
    items = list(head.items())
    headers = CaseInsensitiveDict(items)
    if len(headers) < len(items):  # a repeated header: one value, as urllib3 joins them
        headers = CaseInsensitiveDict(HTTPHeaderDict(items))
    version = 11 if head.version == "HTTP/1.1" else 10
    coding = headers.get("Content-Encoding")
    chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
    body = _Body(head, chunked)
    if coding is None or coding.lower() == "identity":
        raw: Any = _PlainRaw(body, pool.urllib3_pool, headers, head.status_code,
                             (head.status_message or "").strip(), version, scratch)
    else:  # urllib3 decodes, with its bounds and its errors
        raw = urllib3.HTTPResponse(
            body=body, headers=HTTPHeaderDict(items), original_response=body,
            status=head.status_code, version=version, reason=(head.status_message or "").strip(),
            preload_content=False, decode_content=False, pool=pool.urllib3_pool,
            request_method=method, request_url=path, enforce_content_length=True)
    return _requests_response(raw, headers, url)


def _requests_response(raw: Any, headers: Any, url: str) -> requests.Response:
    """What requests' adapter builds around ``raw`` (build_response)."""
    response = requests.Response()
    response.status_code = raw.status
    response.headers = headers
    response.encoding = get_encoding_from_headers(headers)
    response.raw = raw
    response.reason = raw.reason
    response.url = url
    return response


#: How urllib3 turns http.client's headers into its own (folded lines unfolded); private
#: to urllib3, used only on this rare path, with the plain items where it is gone.
_header_items = getattr(urllib3.connection, "_normalize_header_values", lambda msg: msg.items())


class _Replayed(io.RawIOBase):
    """The connection as http.client reads it: the bytes llhttp saw, then the socket's.
    Closing it closes the connection."""

    def __init__(self, received: bytearray, connection) -> None:
        self._pending = bytes(received)
        self._connection = connection

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._pending:
            count = min(len(buffer), len(self._pending))
            buffer[:count] = self._pending[:count]
            self._pending = self._pending[count:]
            return count
        return self._connection.sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._connection.done(reusable=False)


class _ReplayedSocket:
    def __init__(self, raw: _Replayed) -> None:
        self._raw = raw

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(self._raw)


def read_by_http_client(connection, received: bytearray, pool, method: str, url: str,
                         path: str) -> requests.Response:
    """The response to a head llhttp refused, read by http.client and urllib3 as requests'
    path reads every response: http.client takes heads llhttp does not (bare LF line ends,
    folded or odd header lines, a body longer than its Content-Length) and refuses some it
    takes. Raises what http.client raises; the connection is never reused."""
    raw_file = _Replayed(received, connection)
    answer = http.client.HTTPResponse(_ReplayedSocket(raw_file), method=method)
    try:
        answer.begin()
    except BaseException:
        raw_file.close()
        raise
    try:
        raw = urllib3.HTTPResponse(
            body=answer, headers=HTTPHeaderDict(_header_items(answer.msg)),
            status=answer.status, version=answer.version, reason=answer.reason,
            preload_content=False, decode_content=False, original_response=answer,
            pool=pool.urllib3_pool, request_method=method, request_url=path,
            enforce_content_length=True)
    except BaseException:
        raw_file.close()
        raise
    return _requests_response(raw, CaseInsensitiveDict(raw.headers), url)


