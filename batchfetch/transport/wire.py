"""http.client's connection and response, made cheaper for many small requests.

``http.client`` hands every header block to ``email.parser``, which costs about a
tenth of the CPU batchfetch spends on a small response. :class:`PlainHeadersResponse`
reads the same lines with the same limits and, when every line is a plain
``Name: value`` (a token name, no folding, no stray CR), builds the same
``HTTPMessage`` directly; anything else goes to the email parser as before, so
odd headers parse exactly as they always did. :class:`LeanSends` encodes each
request header line once per connection and sends a request's bytes with one
``send`` where gevent's ``sendall`` would first ask the kernel for the socket's
buffer size. The run's connections mix both in
(``session._TrackedHTTPConnection``); nothing outside batchfetch's pools changes.
"""
from __future__ import annotations

import email.parser
import http.client
import re

__all__ = ["LeanSends", "PlainHeadersResponse", "parse_header_lines"]

# http.client's limits (private there: _MAXLINE, _MAXHEADERS), enforced the same way.
MAX_LINE = 65536
MAX_HEADERS = 100

# One plain header line: an RFC 9110 token, a colon, a value without CR or LF, the line end.
_PLAIN_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n]*\r?\n")


def read_header_lines(fp) -> list[bytes]:
    """The header lines up to and including the blank line (or EOF), as http.client reads them."""
    lines = []
    while True:
        line = fp.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise http.client.LineTooLong("header line")
        lines.append(line)
        if len(lines) > MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
        if line in (b"\r\n", b"\n", b""):
            return lines


def parse_header_lines(lines: list[bytes]) -> http.client.HTTPMessage:
    """The HTTPMessage ``http.client.parse_headers`` would build from ``lines``.

    Example::

        >>> message = parse_header_lines([b"Content-Type: text/plain\\r\\n", b"X-A: 1\\r\\n",
        ...                               b"X-A: 2\\r\\n", b"\\r\\n"])
        >>> message["content-type"], message.get_all("x-a")
        ('text/plain', ['1', '2'])
    """
    body = lines[:-1] if lines and lines[-1] in (b"\r\n", b"\n", b"") else lines
    match = _PLAIN_LINE.fullmatch
    if not all(match(line) for line in body):
        text = b"".join(lines).decode("iso-8859-1")
        return email.parser.Parser(_class=http.client.HTTPMessage).parsestr(text)
    message = http.client.HTTPMessage()
    for line in body:
        name, _, value = line.decode("iso-8859-1").partition(":")
        # What email's compat32 policy stores: the value without leading blanks or the line end.
        message.set_raw(name, value.lstrip(" \t").rstrip("\r\n"))
    return message


class PlainHeadersResponse(http.client.HTTPResponse):
    """``http.client.HTTPResponse`` whose ``begin`` parses headers with parse_header_lines.

    ``begin`` follows CPython's (3.10 to 3.13 have the same logic) step for step;
    only the header parsing differs, and it prints nothing at a ``debuglevel``.
    """

    def begin(self) -> None:
        if self.headers is not None:
            return  # already begun
        while True:  # skip any 100 Continue responses
            version, status, reason = self._read_status()
            if status != http.client.CONTINUE:
                break
            read_header_lines(self.fp)
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = parse_header_lines(read_header_lines(self.fp))

        transfer_encoding = self.headers.get("transfer-encoding")
        self.chunked = bool(transfer_encoding and transfer_encoding.lower() == "chunked")
        if self.chunked:
            self.chunk_left = None
        self.will_close = self._check_close()
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if (status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED)
                or 100 <= status < 200 or self._method == "HEAD"):
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


#: Encoded header lines one connection remembers (a few per distinct header set).
_HEADER_LINES_PER_CONNECTION = 64


def _all_str(header, values: tuple) -> bool:
    return type(header) is str and all(type(value) is str for value in values)


class LeanSends:
    """A connection mixin: response_class is PlainHeadersResponse; header lines are encoded
    once per connection; bytes go out in one send.

    gevent's ``sendall`` reads SO_SNDBUF (a system call) before every send to size its
    chunks; a request's headers fit in one ``send``, and ``sendall`` takes any rest.
    """

    response_class = PlainHeadersResponse
    _header_lines: dict | None = None

    def putheader(self, header, *values) -> None:  # noqa: D102 - http.client API
        # A kept-alive connection sends the same few header lines request after request:
        # each is checked and encoded once (by http.client, through urllib3's SKIP_HEADER
        # check), then reused. Only str names and values are remembered: True == 1 as a
        # key, yet they encode differently.
        lines = self._header_lines
        if lines is None:
            lines = self._header_lines = {}
        key = (header, values)
        try:
            line = lines.get(key)  # remembered keys are all str: no True == 1 match
        except TypeError:  # an unhashable value (a bytearray)
            line = None
        if line is not None:
            self._output(line)
            return
        sent = len(self._buffer)
        super().putheader(header, *values)
        if len(self._buffer) == sent + 1 and _all_str(header, values):
            if len(lines) >= _HEADER_LINES_PER_CONNECTION:
                lines.clear()
            lines[key] = self._buffer[-1]

    def send(self, data) -> None:  # noqa: D102 - http.client API
        sock = self.sock
        if sock is not None and type(data) is bytes and data:
            sent = sock.send(data)
            if sent < len(data):
                sock.sendall(memoryview(data)[sent:])
            return
        super().send(data)
