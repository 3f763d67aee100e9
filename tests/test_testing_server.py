"""Tests for batchfetch.testing, the loopback server: every route, over real sockets, via requests.

The server runs in greenlets of this process's hub; conftest imports batchfetch first, which
gevent-patches the process so that requests here cooperates with it.
"""

import gzip
import json
import socket
import time
from collections.abc import Iterator
from http.client import RemoteDisconnected

import gevent
import pytest
import requests

from batchfetch.testing import PATTERN, ROUTES, LoopbackServer, pattern_bytes


@pytest.fixture
def server(server: LoopbackServer) -> Iterator[LoopbackServer]:
    """conftest's server, checked afterwards: no route crashed behind a 500."""
    yield server
    assert server.errors == []


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def _wait_idle(server: LoopbackServer) -> None:
    """Wait until no client connection is open: ``server.wait_idle()`` gives up after 2 s, an
    upper bound a loaded machine can break; pytest-timeout is the only limit here."""
    while server.open_connections:
        gevent.sleep(0.005)


def _causes(exc: BaseException) -> list[BaseException]:
    """Every exception in ``exc``'s chain, following causes, contexts and wrapped arguments."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop()
        if any(current is known for known in seen):
            continue
        seen.append(current)
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        todo += [arg for arg in current.args if isinstance(arg, BaseException)]
    return seen


def _raw_exchange(server: LoopbackServer, data: bytes) -> bytes:
    """Send raw bytes, then read until the server closes the connection."""
    with socket.create_connection((server.host, server.port)) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# -- the server object ----------------------------------------------------------------------


def test_urls_use_the_bound_port(server: LoopbackServer) -> None:
    assert server.port > 0
    assert server.scheme == "http"
    assert server.base_url == f"http://127.0.0.1:{server.port}"
    assert server.url("/status/404") == f"http://127.0.0.1:{server.port}/status/404"
    assert server.url("ok") == server.url("/ok")


def test_routes_are_documented() -> None:
    assert "/echo" in ROUTES
    assert any(route.startswith("/fault/trickle") for route in ROUTES)
    assert all(route.startswith("/") and text for route, text in ROUTES.items())


def test_stop_is_idempotent_and_refuses_new_connections() -> None:
    server = LoopbackServer().start()
    port = server.port
    server.stop()
    server.stop()
    with requests.Session() as session, pytest.raises(requests.ConnectionError):
        session.get(f"http://127.0.0.1:{port}/ok", timeout=1)


# -- simple routes --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/ok"])
def test_ok(server: LoopbackServer, http: requests.Session, path: str) -> None:
    response = http.get(server.url(path))
    assert (response.status_code, response.text) == (200, "ok\n")
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.headers["Content-Length"] == "3"


@pytest.mark.parametrize(
    ("code", "reason"),
    [(201, "Created"), (404, "Not Found"), (418, "I'm a Teapot"), (503, "Service Unavailable")],
)
def test_status(server: LoopbackServer, http: requests.Session, code: int, reason: str) -> None:
    response = http.get(server.url(f"/status/{code}"))
    assert (response.status_code, response.reason) == (code, reason)
    assert response.text == f"status {code}\n"
    assert "Retry-After" not in response.headers


@pytest.mark.parametrize("code", [204, 304])
def test_status_without_body(server: LoopbackServer, http: requests.Session, code: int) -> None:
    response = http.get(server.url(f"/status/{code}"))
    assert (response.status_code, response.content) == (code, b"")
    assert "Content-Length" not in response.headers
    assert http.get(server.url("/ok")).text == "ok\n"  # the connection is still in step


@pytest.mark.parametrize("value", ["7", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_status_retry_after_is_verbatim(
    server: LoopbackServer, http: requests.Session, value: str
) -> None:
    response = http.get(server.url("/status/429"), params={"retry_after": value})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == value


def test_bad_parameters_are_400(server: LoopbackServer, http: requests.Session) -> None:
    assert http.get(server.url("/status/101")).status_code == 400  # 1xx is not a final answer
    assert http.get(server.url("/flaky/k?fail=two")).status_code == 400
    assert http.get(server.url("/redirect-to?status=200")).status_code == 400


def test_unknown_path_is_404(server: LoopbackServer, http: requests.Session) -> None:
    response = http.get(server.url("/no/such/route"))
    assert (response.status_code, response.text) == (404, "not found\n")


def test_head_has_headers_but_no_body(server: LoopbackServer, http: requests.Session) -> None:
    response = http.head(server.url("/bytes/1000"))
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["Content-Length"] == "1000"
    chunked = http.head(server.url("/gzip/1000"))
    assert (chunked.headers["Transfer-Encoding"], chunked.content) == ("chunked", b"")
    assert http.get(server.url("/ok")).text == "ok\n"
    assert server.connections_accepted == 1  # no body was sent, and none was expected


def test_delay(server: LoopbackServer, http: requests.Session) -> None:
    started = time.monotonic()
    response = http.get(server.url("/delay/0.2"))
    assert (response.status_code, response.text) == (200, "ok\n")
    assert time.monotonic() - started >= 0.19


def test_json_and_html(server: LoopbackServer, http: requests.Session) -> None:
    document = http.get(server.url("/json"))
    assert document.headers["Content-Type"] == "application/json"
    assert document.json() == {"name": "batchfetch", "ok": True, "items": [1, 2, 3]}
    page = http.get(server.url("/html"))
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<h1>ok</h1>" in page.text


# -- redirects ------------------------------------------------------------------------------


def test_redirect_chain(server: LoopbackServer, http: requests.Session) -> None:
    response = http.get(server.url("/redirect/3"))
    assert (response.status_code, response.text) == (200, "ok\n")
    assert [r.status_code for r in response.history] == [302, 302, 302]
    assert [r.headers["Location"] for r in response.history] == [
        "/redirect/2", "/redirect/1", "/redirect/0"
    ]
    assert response.url == server.url("/redirect/0")


def test_redirect_loop(server: LoopbackServer, http: requests.Session) -> None:
    http.max_redirects = 5
    with pytest.raises(requests.TooManyRedirects):
        http.get(server.url("/redirect-loop"))
    assert server.hits["/redirect-loop"] == 6


def test_redirect_to(server: LoopbackServer, http: requests.Session) -> None:
    target = server.url("/json")
    response = http.get(server.url("/redirect-to"), params={"url": target, "status": "301"})
    assert response.url == target
    assert [r.status_code for r in response.history] == [301]
    assert http.get(server.url("/redirect-to"), allow_redirects=False).headers["Location"] == "/ok"


# -- state kept on the instance -------------------------------------------------------------


def test_flaky_fails_then_succeeds_per_key(server: LoopbackServer, http: requests.Session) -> None:
    url = server.url("/flaky/a?fail=2&status=503&retry_after=1")
    responses = [http.get(url) for _ in range(3)]
    assert [r.status_code for r in responses] == [503, 503, 200]
    assert [r.headers.get("Retry-After") for r in responses] == ["1", "1", None]
    assert http.get(server.url("/flaky/b?fail=1&status=500")).status_code == 500
    assert server.flaky_counts == {"a": 3, "b": 1}
    assert server.hits["/flaky/a"] == 3


def test_flaky_state_is_per_instance(http: requests.Session) -> None:
    with LoopbackServer() as first, LoopbackServer() as second:
        assert http.get(first.url("/flaky/k?fail=1")).status_code == 503
        assert http.get(second.url("/flaky/k?fail=1")).status_code == 503
        assert http.get(first.url("/flaky/k?fail=1")).status_code == 200


def test_reset_counters(server: LoopbackServer, http: requests.Session) -> None:
    http.get(server.url("/flaky/x?fail=1"))
    server.reset_counters()
    assert (server.connections_accepted, server.requests_served) == (0, 0)
    assert (server.hits, server.flaky_counts) == ({}, {})
    assert http.get(server.url("/flaky/x?fail=1")).status_code == 503


# -- bodies ---------------------------------------------------------------------------------


def test_bytes(server: LoopbackServer, http: requests.Session) -> None:
    response = http.get(server.url("/bytes/100000"))
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Length"] == "100000"
    assert response.content == pattern_bytes(100_000)
    assert response.content[:20] == PATTERN + PATTERN[:4]


def test_bytes_chunked(server: LoopbackServer, http: requests.Session) -> None:
    response = http.get(server.url("/bytes/200000?chunked=1"))
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in response.headers
    assert response.content == pattern_bytes(200_000)
    assert http.get(server.url("/bytes/0?chunked=1")).content == b""


def test_huge_bytes_stream_in_constant_memory(
    server: LoopbackServer, http: requests.Session, capfd: pytest.CaptureFixture[str]
) -> None:
    with http.get(server.url("/bytes/2000000000"), stream=True) as response:
        assert response.headers["Content-Length"] == "2000000000"
        received = bytearray()
        for chunk in response.iter_content(64 * 1024):
            received += chunk
            if len(received) >= 1_000_000:
                break
    assert bytes(received[:1_000_000]) == pattern_bytes(1_000_000)
    http.close()  # the client hangs up mid-body; the server must stop quietly
    _wait_idle(server)
    assert "Traceback" not in capfd.readouterr().err


def test_gzip_small(server: LoopbackServer, http: requests.Session) -> None:
    response = http.get(server.url("/gzip/1000"))
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert response.content == bytes(1000)


def test_gzip_bomb_starts_streaming(server: LoopbackServer, http: requests.Session) -> None:
    """The first megabyte of a 2 GB bomb comes out decoded. (How soon is bench/'s question:
    the 2 s bound here was an upper bound a loaded machine could break.)"""
    with http.get(server.url("/gzip/2000000000"), stream=True) as response:
        decoded = bytearray()
        for chunk in response.iter_content(64 * 1024):
            decoded += chunk
            if len(decoded) >= 1_000_000:
                break
    assert len(decoded) >= 1_000_000 and not any(decoded)
    http.close()
    _wait_idle(server)


# -- echo and cookies -----------------------------------------------------------------------


def test_echo_json_post(server: LoopbackServer, http: requests.Session) -> None:
    response = http.post(
        server.url("/echo?a=1&b=2&a=3"),
        json={"x": [1, "é"]},
        headers={"X-Custom-Header": "Value", "Cookie": "one=1; two=2"},
    )
    echo = response.json()
    assert response.headers["Content-Type"] == "application/json"
    assert (echo["method"], echo["path"]) == ("POST", "/echo")
    assert echo["query"] == {"a": "3", "b": "2"}
    assert echo["headers"]["X-Custom-Header"] == "Value"  # the case the client sent
    assert echo["json"] == {"x": [1, "é"]}
    assert json.loads(echo["body"]) == {"x": [1, "é"]}
    assert echo["cookies"] == {"one": "1", "two": "2"}


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS"])
def test_echo_any_method(server: LoopbackServer, http: requests.Session, method: str) -> None:
    echo = http.request(method, server.url("/echo"), data=b"plain").json()
    assert (echo["method"], echo["body"], echo["json"]) == (method, "plain", None)


def test_echo_chunked_request_body(server: LoopbackServer, http: requests.Session) -> None:
    parts = (part for part in [b"hello ", b"", b"chunked ", b"world"])
    echo = http.post(server.url("/echo"), data=parts).json()
    assert echo["headers"]["Transfer-Encoding"] == "chunked"
    assert echo["body"] == "hello chunked world"


def test_echo_latin1_fallback(server: LoopbackServer, http: requests.Session) -> None:
    assert http.post(server.url("/echo"), data=b"caf\xe9").json()["body"] == "café"


def test_cookies_set_and_sent_back(server: LoopbackServer, http: requests.Session) -> None:
    response = http.get(server.url("/cookies/set?flavour=oat&count=3"))
    assert response.text == "ok\n"
    assert response.raw.headers.getlist("Set-Cookie") == [
        "flavour=oat; Path=/", "count=3; Path=/"
    ]
    assert http.cookies.get_dict() == {"flavour": "oat", "count": "3"}
    assert http.get(server.url("/cookies")).json() == {
        "cookies": {"flavour": "oat", "count": "3"}
    }


# -- faults ---------------------------------------------------------------------------------


def test_hang_times_out(server: LoopbackServer, http: requests.Session) -> None:
    with pytest.raises(requests.ReadTimeout):
        http.get(server.url("/fault/hang"), timeout=0.5)
    _wait_idle(server)  # the client closing ends the hang


def test_reset_is_a_connection_reset(server: LoopbackServer, http: requests.Session) -> None:
    with pytest.raises(requests.ConnectionError) as caught:
        http.get(server.url("/fault/reset"))
    assert any(isinstance(e, ConnectionResetError) for e in _causes(caught.value))


def test_close_is_a_remote_disconnect(server: LoopbackServer, http: requests.Session) -> None:
    with pytest.raises(requests.ConnectionError) as caught:
        http.get(server.url("/fault/close"))
    assert any(isinstance(e, RemoteDisconnected) for e in _causes(caught.value))


def test_truncated_body(server: LoopbackServer, http: requests.Session) -> None:
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        http.get(server.url("/fault/truncated?length=1000&send=10"))
    with http.get(server.url("/fault/truncated?length=50&send=5"), stream=True) as response:
        assert response.headers["Content-Length"] == "50"
        assert response.raw.read(5) == PATTERN[:5]


def test_reset_mid_body(server: LoopbackServer, http: requests.Session) -> None:
    with http.get(server.url("/fault/reset-body"), stream=True) as response:
        assert response.headers["Content-Length"] == "100000"
        with pytest.raises(requests.exceptions.ChunkedEncodingError) as caught:
            response.content  # noqa: B018
    assert any(isinstance(e, ConnectionResetError) for e in _causes(caught.value))


def test_garbage_reply(server: LoopbackServer, http: requests.Session) -> None:
    with pytest.raises(requests.ConnectionError):
        http.get(server.url("/fault/garbage"))


def test_trickle(server: LoopbackServer, http: requests.Session) -> None:
    """The first bytes arrive one at a time: the whole trickle would take 500 s, so these
    four cannot have waited for its end. (A lower bound on the gap between the first and
    the fourth broke when a busy client read the first three together.)"""
    started = time.monotonic()
    url = server.url("/fault/trickle?interval=0.05&bytes=10000")
    with http.get(url, stream=True) as response:
        assert response.headers["Content-Length"] == "10000"
        arrivals = []
        for byte in response.iter_content(1):
            arrivals.append((byte, time.monotonic() - started))
            if len(arrivals) == 4:
                break
    assert b"".join(byte for byte, _ in arrivals) == b"0123"
    assert arrivals[-1][1] >= 0.19  # the server waits its interval before each byte


def test_slow_headers(server: LoopbackServer, http: requests.Session) -> None:
    with pytest.raises(requests.ReadTimeout):
        http.get(server.url("/fault/slow-headers?delay=0.5"), timeout=0.1)
    assert http.get(server.url("/fault/slow-headers?delay=0.05")).text == "ok\n"


def test_stop_closes_hanging_connections(capfd: pytest.CaptureFixture[str]) -> None:
    """The client has no timeout: only stop() can end its request (a 5 s read timeout and
    "< 1 s" bounds were upper bounds a loaded machine could break)."""
    server = LoopbackServer().start()

    def hang() -> Exception | None:
        # Returned, not raised: gevent prints a greenlet's exception, which capfd would see.
        with requests.Session() as session:
            try:
                session.get(server.url("/fault/hang"))
            except requests.RequestException as exc:
                return exc
        return None

    client = gevent.spawn(hang)
    while not server.hits["/fault/hang"]:
        gevent.sleep(0.01)
    server.stop()
    assert isinstance(client.get(), requests.ConnectionError)
    assert server.open_connections == 0
    assert "Traceback" not in capfd.readouterr().err


# -- the protocol ---------------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(server: LoopbackServer, http: requests.Session) -> None:
    for _ in range(10):
        assert http.get(server.url("/ok")).status_code == 200
    assert server.connections_accepted == 1
    assert (server.requests_served, server.hits["/ok"]) == (10, 10)
    assert server.open_connections == 1
    http.close()
    _wait_idle(server)


def test_connections_counted_across_sessions(server: LoopbackServer) -> None:
    for _ in range(3):
        with requests.Session() as session:
            session.get(server.url("/ok"))
            session.get(server.url("/json"))
    assert server.connections_accepted == 3
    assert server.requests_served == 6
    _wait_idle(server)


def test_connection_close_header_closes(server: LoopbackServer) -> None:
    reply = _raw_exchange(server, b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close\r\n" in reply and reply.endswith(b"\r\n\r\nok\n")


def test_http10_closes_unless_keep_alive(server: LoopbackServer) -> None:
    assert _raw_exchange(server, b"GET /ok HTTP/1.0\r\n\r\n").endswith(b"\r\n\r\nok\n")
    with socket.create_connection((server.host, server.port)) as sock:
        for _ in range(2):
            sock.sendall(b"GET /ok HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            assert b"Connection: keep-alive" in sock.recv(4096)
    assert server.connections_accepted == 2
    # HTTP/1.0 has no chunked coding: the gzip stream is sent as it is, ended by the close.
    reply = _raw_exchange(server, b"GET /gzip/10 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head and b"Connection: close" in head
    assert gzip.decompress(body) == bytes(10)


def test_pipelined_requests(server: LoopbackServer) -> None:
    request = b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /status/404 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    reply = _raw_exchange(server, request * 2 + last)
    assert reply.count(b"HTTP/1.1 200 OK") == 2 and b"HTTP/1.1 404 Not Found" in reply


def test_bad_request_after_head_still_has_a_body(server: LoopbackServer) -> None:
    reply = _raw_exchange(server, b"HEAD /ok HTTP/1.1\r\n\r\nBAD\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert reply.endswith(b"\r\n\r\nbad request: bad request line b'BAD\\r\\n'\n")


@pytest.mark.parametrize(
    "data",
    [b"NONSENSE\r\n\r\n", b"GET /ok SPDY/3\r\n\r\n", b"GET /ok HTTP/1.1\r\nno colon\r\n\r\n"],
)
def test_bad_request_is_400_and_close(server: LoopbackServer, data: bytes) -> None:
    reply = _raw_exchange(server, data)
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close" in reply
    assert server.requests_served == 0


def test_client_vanishing_mid_request_is_quiet(
    server: LoopbackServer, capfd: pytest.CaptureFixture[str]
) -> None:
    with socket.create_connection((server.host, server.port)) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\npartial")
    _wait_idle(server)
    assert server.requests_served == 0
    assert "Traceback" not in capfd.readouterr().err


# -- TLS ------------------------------------------------------------------------------------


def test_https_with_trusted_ca(
    tls_server: tuple[LoopbackServer, str], http: requests.Session
) -> None:
    server, ca_path = tls_server
    assert (server.scheme, server.base_url) == ("https", f"https://127.0.0.1:{server.port}")
    for _ in range(3):
        response = http.get(server.url("/echo"), verify=ca_path)
        assert response.json()["method"] == "GET"
    assert server.connections_accepted == 1  # keep-alive works through TLS too
    assert server.errors == []


def test_https_untrusted_fails_quietly(
    tls_server: tuple[LoopbackServer, str],
    http: requests.Session,
    capfd: pytest.CaptureFixture[str],
) -> None:
    server, _ = tls_server
    with pytest.raises(requests.exceptions.SSLError):
        http.get(server.url("/ok"), verify=True)  # the default bundle does not know our CA
    with pytest.raises(requests.ConnectionError):  # plain HTTP to a TLS port
        http.get(server.url("/ok").replace("https:", "http:"))
    _wait_idle(server)
    assert server.connections_accepted == 2 and server.requests_served == 0
    # gevent's own StreamServer(ssl_context=...) prints a traceback for each failed handshake.
    assert "Traceback" not in capfd.readouterr().err
