"""The routes of the loopback test server in ``batchfetch.testing``: one function per behaviour.

A route gets the server (per-instance state such as flaky counters), the connection and the
parsed request. It either answers with ``conn.respond`` or misbehaves on purpose with the
connection's raw-socket helpers. A ``ValueError`` from a route (a bad parameter) becomes a 400.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import gevent

from .wire import Connection, Request


#: The LoopbackServer a route answers for (its state: hits, flaky counts, buckets); named
#: loosely, since the server module imports the routes.
Server = Any
#: A route: ``handler(server, conn, req, *path_groups)``.
Handler = Callable[..., None]

#: The byte pattern ``/bytes/<n>`` repeats, so a test can check content as well as length.
PATTERN = b"0123456789abcdef"
#: Route (with optional query parameters in brackets) -> what it does, for docs and ``--help``.
ROUTES: dict[str, str] = {}

_CHUNK = 64 * 1024
_PATTERN_BLOCK = PATTERN * (_CHUNK // len(PATTERN))  # a chunk boundary is a pattern boundary
_ZEROS = bytes(_CHUNK)
_OCTETS = "application/octet-stream"
_TABLE: list[tuple[re.Pattern[str], Handler]] = []


@dataclasses.dataclass
class TokenBucket:
    """The state of one ``/limited/<key>``: tokens, and what it answered so far."""

    tokens: float
    updated: float
    allowed: int = 0
    throttled: int = 0  # 429s answered
    retry_afters: int = 0  # of them, with a Retry-After header
    concurrent: int = 0  # allowed requests being served now
    most_concurrent: int = 0

    def take(self, rate: float, burst: float, now: float) -> bool:
        """Take a token if one is there (refilled at ``rate`` per second up to ``burst``)."""
        self.tokens = min(burst, self.tokens + (now - self.updated) * rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.allowed += 1
            return True
        self.throttled += 1
        return False



def _route(regex: str, doc: str, description: str) -> Callable[[Handler], Handler]:
    """Register a handler for paths matching ``regex`` and document it in ``ROUTES``."""

    def register(handler: Handler) -> Handler:
        _TABLE.append((re.compile(regex), handler))
        ROUTES[doc] = description
        return handler

    return register


def dispatch(server: Server, conn: Connection, req: Request) -> None:
    """Answer ``req`` with the first route whose pattern matches the whole path, else 404."""
    for regex, handler in _TABLE:
        match = regex.fullmatch(req.path)
        if match:
            handler(server, conn, req, *match.groups())
            return
    conn.respond(404, b"not found\n")


def pattern_chunks(n: int) -> Iterator[bytes]:
    """Yield the first ``n`` bytes of repeated ``PATTERN`` in 64 KiB chunks (constant memory)."""
    full, rest = divmod(n, _CHUNK)
    for _ in range(full):
        yield _PATTERN_BLOCK
    if rest:
        yield _PATTERN_BLOCK[:rest]


def _compressors(coding: str) -> tuple[Callable[[bytes], bytes], Callable[[], bytes]]:
    """``(compress, finish)`` of a streaming compressor for a Content-Encoding."""
    if coding == "br":
        import brotli  # urllib3's brotli extra, a dependency of batchfetch

        compressor = brotli.Compressor(quality=1)  # level 11 would take seconds per MiB
        return compressor.process, compressor.finish
    if coding == "zstd":
        try:
            from compression import zstd  # Python 3.14
        except ImportError:
            from backports import zstd  # urllib3's zstd extra before 3.14

        compressor = zstd.ZstdCompressor()
        return compressor.compress, compressor.flush
    wbits = {"gzip": 31, "deflate": 15}[coding]  # 31: gzip's header and trailer; 15: zlib's
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return compressor.compress, compressor.flush


def _compressed_zeros(n: int, coding: str = "gzip") -> Iterator[bytes]:
    """Yield ``n`` zero bytes in Content-Encoding ``coding``, compressed as they go so
    ``n`` can be huge."""
    compress, finish = _compressors(coding)
    for size in range(n, 0, -_CHUNK):
        data = compress(_ZEROS[: min(size, _CHUNK)])
        if data:  # an empty chunk would end a chunked body early
            yield data
    yield finish()


def _retry_after(req: Request) -> list[tuple[str, str]]:
    """Return the ``Retry-After`` header asked for in the query, verbatim (seconds or a date)."""
    value = req.query.get("retry_after")
    return [] if value is None else [("Retry-After", value)]


def _json(conn: Connection, document: object, status: int = 200) -> None:
    conn.respond(status, json.dumps(document).encode(), content_type="application/json")


@_route(r"/(?:ok)?", "/ok", "200 text/plain 'ok' (also '/')")
def _ok(server: Server, conn: Connection, req: Request) -> None:
    conn.respond(200, b"ok\n")


@_route(r"/status/(\d{3})", "/status/<code>[?retry_after=VALUE]",
        "that status and reason, body 'status <code>', optional Retry-After header")
def _status(server: Server, conn: Connection, req: Request, code: str) -> None:
    status = int(code)
    if not 200 <= status <= 599:  # a 1xx is not a final answer: the client would wait forever
        raise ValueError(f"status must be 200-599, got {status}")
    conn.respond(status, f"status {status}\n".encode(), headers=_retry_after(req))


@_route(r"/delay/(\d+(?:\.\d*)?)", "/delay/<seconds>", "sleep, then 200 'ok'")
def _delay(server: Server, conn: Connection, req: Request, seconds: str) -> None:
    gevent.sleep(float(seconds))
    conn.respond(200, b"ok\n")


@_route(r"/redirect/(\d+)", "/redirect/<n>", "302 to /redirect/<n-1>; /redirect/0 is 200 'ok'")
def _redirect(server: Server, conn: Connection, req: Request, n: str) -> None:
    if int(n) == 0:
        conn.respond(200, b"ok\n")
    else:
        conn.respond(302, b"", headers=[("Location", f"/redirect/{int(n) - 1}")])


@_route(r"/redirect-loop", "/redirect-loop", "302 to itself, forever")
def _redirect_loop(server: Server, conn: Connection, req: Request) -> None:
    conn.respond(302, b"", headers=[("Location", "/redirect-loop")])


@_route(r"/redirect-to", "/redirect-to[?url=/ok&status=302]", "redirect to any URL")
def _redirect_to(server: Server, conn: Connection, req: Request) -> None:
    status = int(req.query.get("status", "302"))
    if not 300 <= status <= 399:
        raise ValueError(f"status must be 3xx, got {status}")
    conn.respond(status, b"", headers=[("Location", req.query.get("url", "/ok"))])


@_route(r"/flaky/([^/]+)", "/flaky/<key>[?fail=2&status=503&retry_after=VALUE]",
        "the first <fail> requests for <key> get <status>, later ones 200 'ok'")
def _flaky(server: Server, conn: Connection, req: Request, key: str) -> None:
    fail = int(req.query.get("fail", "2"))
    status = int(req.query.get("status", "503"))
    server.flaky_counts[key] += 1
    attempt = server.flaky_counts[key]
    if attempt <= fail:
        body = f"flaky {key}: attempt {attempt} of {fail} failing\n".encode()
        conn.respond(status, body, headers=_retry_after(req))
    else:
        conn.respond(200, b"ok\n")


@_route(r"/limited/([^/]+)", "/limited/<key>[?rate=100&burst=10&delay=0.05&retry_after=1&every=2]",
        "a token bucket per <key>: <rate> requests/s, bursts of <burst>; beyond it an "
        "immediate 429, every <every>-th with Retry-After: <retry_after>; within it 200 'ok' "
        "after <delay> s (a rate-limited API)")
def _limited(server: Server, conn: Connection, req: Request, key: str) -> None:
    rate = float(req.query.get("rate", "100"))
    burst = float(req.query.get("burst", "10"))
    now = time.monotonic()
    bucket = server.limited.get(key)
    if bucket is None:
        bucket = server.limited[key] = TokenBucket(tokens=burst, updated=now)
    if not bucket.take(rate, burst, now):
        every = int(req.query.get("every", "2"))
        headers = []
        if every and bucket.throttled % every == 0:
            bucket.retry_afters += 1
            headers = [("Retry-After", req.query.get("retry_after", "1"))]
        conn.respond(429, b"too many requests\n", headers=headers)
        return
    bucket.concurrent += 1
    bucket.most_concurrent = max(bucket.most_concurrent, bucket.concurrent)
    try:
        gevent.sleep(float(req.query.get("delay", "0.05")))
    finally:
        bucket.concurrent -= 1
    conn.respond(200, b"ok\n")


@_route(r"/busy/([^/]+)", "/busy/<key>[?workers=2&service=0.02]",
        "a backend of <workers> per <key>, each <service> s per request; the rest queue "
        "(an overloaded server: latency grows with the requests in flight)")
def _busy(server: Server, conn: Connection, req: Request, key: str) -> None:
    from gevent.lock import Semaphore

    backend = server.backends.get(key)
    if backend is None:
        backend = server.backends[key] = [Semaphore(int(req.query.get("workers", "2"))), 0, 0,
                                          []]
    backend[1] += 1  # requests at the server now
    backend[2] = max(backend[2], backend[1])
    backend[3].append(backend[1])
    try:
        with backend[0]:
            gevent.sleep(float(req.query.get("service", "0.02")))
    finally:
        backend[1] -= 1
    conn.respond(200, f"served with {backend[1]} others waiting\n".encode())


@_route(r"/bytes/(\d+)", "/bytes/<n>[?chunked=1]",
        "n bytes of the repeated PATTERN, streamed in 64 KiB chunks (n may be huge)")
def _bytes(server: Server, conn: Connection, req: Request, n: str) -> None:
    chunked = req.query.get("chunked") == "1"
    conn.respond(200, pattern_chunks(int(n)), content_type=_OCTETS, length=int(n),
                 chunked=chunked)


def random_bytes(seed: str, n: int) -> bytes:
    """The body of ``/random/<n>?seed=SEED``: n bytes no other seed gives.

    Example::

        >>> len(random_bytes("a", 10)), random_bytes("a", 4) == random_bytes("b", 4)
        (10, False)
    """
    return random.Random(seed).randbytes(n)


@_route(r"/random/(\d+)", "/random/<n>[?seed=S&chunked=1]",
        "n pseudo-random bytes of seed S (random_bytes), so each seed's body is its own")
def _random(server: Server, conn: Connection, req: Request, n: str) -> None:
    body = random_bytes(req.query.get("seed", ""), int(n))
    chunks = (body[start:start + _CHUNK] for start in range(0, len(body), _CHUNK))
    conn.respond(200, chunks, content_type=_OCTETS, length=len(body),
                 chunked=req.query.get("chunked") == "1")


@_route(r"/gzip/(\d+)", "/gzip/<n>",
        "chunked, Content-Encoding: gzip, decodes to n zero bytes (a gzip bomb when n is huge)")
def _gzip(server: Server, conn: Connection, req: Request, n: str) -> None:
    conn.respond(200, _compressed_zeros(int(n)), content_type=_OCTETS, chunked=True,
                 headers=[("Content-Encoding", "gzip")])


@_route(r"/encoded/(gzip|deflate|br|zstd)/(\d+)", "/encoded/<coding>/<n>",
        "chunked, Content-Encoding: gzip, deflate, br or zstd, decodes to n zero bytes")
def _encoded(server: Server, conn: Connection, req: Request, coding: str, n: str) -> None:
    conn.respond(200, _compressed_zeros(int(n), coding), content_type=_OCTETS, chunked=True,
                 headers=[("Content-Encoding", coding)])


@_route(r"/echo", "/echo", "any method: JSON of method, path, query, headers, body, json, cookies")
def _echo(server: Server, conn: Connection, req: Request) -> None:
    try:
        text = req.body.decode("utf-8")
    except UnicodeDecodeError:
        text = req.body.decode("latin-1")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    headers: dict[str, str] = {}
    for name, value in req.headers:  # repeated headers fold into one, as RFC 9110 allows
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    _json(conn, {"method": req.method, "path": req.path, "query": req.query, "headers": headers,
                 "body": text, "json": parsed, "cookies": req.cookies})


@_route(r"/cookies/set", "/cookies/set?name=value&...", "one Set-Cookie (Path=/) per query pair")
def _cookies_set(server: Server, conn: Connection, req: Request) -> None:
    cookies = [("Set-Cookie", f"{name}={value}; Path=/") for name, value in req.query_pairs]
    conn.respond(200, b"ok\n", headers=cookies)


@_route(r"/cookies", "/cookies", "JSON {'cookies': {...}} of the cookies received")
def _cookies(server: Server, conn: Connection, req: Request) -> None:
    _json(conn, {"cookies": req.cookies})


@_route(r"/json", "/json", "a small JSON document")
def _json_document(server: Server, conn: Connection, req: Request) -> None:
    _json(conn, {"name": "batchfetch", "ok": True, "items": [1, 2, 3]})


@_route(r"/validated/([^/]+)", "/validated/<tag>[?modified=HTTP-DATE]",
        "200 'version <tag>' with ETag: \"<tag>\" and Last-Modified (a page that has validators)")
def _validated(server: Server, conn: Connection, req: Request, tag: str) -> None:
    modified = req.query.get("modified", "Tue, 01 Dec 2026 00:00:00 GMT")
    conn.respond(200, f"version {tag}\n".encode(),
                 headers=[("ETag", f'"{tag}"'), ("Last-Modified", modified)])


@dataclasses.dataclass
class Page:
    """What ``/page/<name>`` answers: a page a test changes between runs, as a site's files
    change between a batch's runs. ``etag`` and ``last_modified`` are sent when set (and
    answered with 304 as nginx does: If-None-Match compared weakly, If-Modified-Since
    exactly); ``location`` redirects there instead; ``faults`` come first."""

    body: bytes = b""
    etag: str = ""
    last_modified: str = ""
    status: int = 200
    location: str = ""
    #: What the next requests get first, one each: a status (with the body ``busy``), or
    #: 0 for a TCP reset.
    faults: list = dataclasses.field(default_factory=list)
    #: Requests answered, 304s among them, and body bytes sent.
    served: int = 0
    not_modified: int = 0
    body_bytes: int = 0


def _weak(tag: str) -> str:
    return tag.strip().removeprefix("W/")


@_route(r"/page/([^/?]+)", "/page/<name>",
        "the test's server.pages[name] (a Page): its body, validators and 304s; 404 if none")
def _page(server: Server, conn: Connection, req: Request, name: str) -> None:
    page = server.pages.get(name)
    if page is None:
        conn.respond(404, b"no such page\n")
        return
    page.served += 1
    if page.faults:
        fault = page.faults.pop(0)
        if not fault:
            conn.reset()
        else:
            conn.respond(fault, b"busy\n")
        return
    if page.location:
        conn.respond(301, b"", headers=[("Location", page.location)])
        return
    headers = [(name, value) for name, value in (("ETag", page.etag),
                                                  ("Last-Modified", page.last_modified)) if value]
    match = req.header("If-None-Match", None)
    since = req.header("If-Modified-Since", None)
    if page.status == 200 and (
            (match is not None and page.etag
             and _weak(page.etag) in {_weak(tag) for tag in match.split(",")})
            or (match is None and since is not None and since == page.last_modified)):
        page.not_modified += 1
        conn.respond(304, headers=headers)
        return
    page.body_bytes += len(page.body)
    conn.respond(page.status, page.body, headers=headers)


@_route(r"/html", "/html", "a small HTML page")
def _html(server: Server, conn: Connection, req: Request) -> None:
    page = b"<!doctype html>\n<title>batchfetch</title>\n<h1>ok</h1>\n"
    conn.respond(200, page, content_type="text/html; charset=utf-8")


@_route(r"/fault/hang", "/fault/hang", "never answers; holds the connection until it closes")
def _hang(server: Server, conn: Connection, req: Request) -> None:
    conn.wait_for_close()


@_route(r"/fault/reset", "/fault/reset", "TCP RST before any response byte")
def _reset(server: Server, conn: Connection, req: Request) -> None:
    conn.reset()


@_route(r"/fault/close", "/fault/close", "clean close without any response")
def _close(server: Server, conn: Connection, req: Request) -> None:
    conn.close()


@_route(r"/fault/truncated", "/fault/truncated[?length=1000&send=10]",
        "headers promise <length> bytes, <send> are sent, then a clean close")
def _truncated(server: Server, conn: Connection, req: Request) -> None:
    length = int(req.query.get("length", "1000"))
    send = int(req.query.get("send", "10"))
    conn.respond(200, pattern_chunks(send), content_type=_OCTETS, length=length)
    conn.close()


@_route(r"/fault/reset-body", "/fault/reset-body",
        "headers promise 100000 bytes, 1000 are sent, then a TCP RST")
def _reset_body(server: Server, conn: Connection, req: Request) -> None:
    conn.respond(200, pattern_chunks(1000), content_type=_OCTETS, length=100_000)
    gevent.sleep(0.05)  # let the client read first: some systems drop unread data on RST
    conn.reset()


@_route(r"/fault/garbage", "/fault/garbage", "a non-HTTP reply, then a close")
def _garbage(server: Server, conn: Connection, req: Request) -> None:
    conn.send_raw(b"this is not http\r\n\r\n")
    conn.close()


@_route(r"/fault/trickle", "/fault/trickle[?interval=0.5&bytes=20]",
        "200 with Content-Length <bytes>, then one byte every <interval> seconds")
def _trickle(server: Server, conn: Connection, req: Request) -> None:
    interval = float(req.query.get("interval", "0.5"))
    count = int(req.query.get("bytes", "20"))

    def drip() -> Iterator[bytes]:
        for i in range(count):
            gevent.sleep(interval)
            yield PATTERN[i % len(PATTERN):][:1]

    conn.respond(200, drip(), content_type=_OCTETS, length=count)


@_route(r"/fault/slow-headers", "/fault/slow-headers[?delay=1]",
        "sleeps <delay> seconds before the status line, then 200 'ok'")
def _slow_headers(server: Server, conn: Connection, req: Request) -> None:
    gevent.sleep(float(req.query.get("delay", "1")))
    conn.respond(200, b"ok\n")


@_route(r"/robots\.txt", "/robots.txt",
        "the server's robots_txt, set by the test: bytes are served as 200 text/plain, a path "
        "of this server ('/status/503') is answered as that path would be; unset: 404")
def _robots_txt(server: Server, conn: Connection, req: Request) -> None:
    answer = getattr(server, "robots_txt", None)  # per instance: each test its own robots.txt
    if answer is None:
        conn.respond(404, b"not found\n")
    elif isinstance(answer, bytes):
        conn.respond(200, answer)
    elif answer.partition("?")[0] == "/robots.txt":
        raise ValueError("robots_txt cannot answer as /robots.txt itself")
    else:
        dispatch(server, conn, dataclasses.replace(req, target=answer))


#: What ``/robots/hops/0`` and the start of ``/robots/endless`` say.
ROBOTS_PRIVATE = b"User-agent: *\nDisallow: /private\n"


@_route(r"/robots/hops/(\d+)", "/robots/hops/<n>",
        "302 to /robots/hops/<n-1>; /robots/hops/0 is a robots.txt disallowing /private")
def _robots_hops(server: Server, conn: Connection, req: Request, n: str) -> None:
    if int(n) == 0:
        conn.respond(200, ROBOTS_PRIVATE)
    else:
        conn.respond(302, b"", headers=[("Location", f"/robots/hops/{int(n) - 1}")])


@_route(r"/robots/endless", "/robots/endless",
        "a chunked robots.txt that never ends: it disallows /private, then comments forever")
def _robots_endless(server: Server, conn: Connection, req: Request) -> None:
    def lines() -> Iterator[bytes]:
        yield ROBOTS_PRIVATE
        filler = b"# more to come\n" * 4096
        while True:
            yield filler

    conn.respond(200, lines(), chunked=True)
