"""The wire contract: every transport sends an item as requests' own path sends it, byte for byte.

Every way an attempt can go on the wire is listed in ``batchfetch.transport.TRANSPORTS``
(today the fast path and requests' own path). Whatever carries a request, this module is the
contract it must pass (issue 13, item 8): for every item of a corpus of tricky URLs and request
headers, a raw-socket server on 127.0.0.1 captures the exact bytes of each request it receives,
and ``fetch_all`` on every transport and a plain ``requests.Session().request(..., stream=True)``
must send the same bytes and report the same row (status, reason, final URL after any
redirect). requests' own path is the reference: where a transport cannot send a URL exactly as
requests would, it hands the item to requests' path.
"""
import dataclasses
import random
import re
import socket

import gevent.server
import pytest
import requests

from batchfetch import FetchOptions, fetch_all
from batchfetch.inputs import to_spec
from batchfetch.transport import TRANSPORTS

#: The transport every other one is held against: requests' own path.
REFERENCE = "requests"
#: The transports the installed libraries can run (transport._ghc).
AVAILABLE = [choice for choice in TRANSPORTS if choice.available]

#: ``{port}`` in a URL, a Location or a header becomes the capturing server's port.
ORIGIN = "http://127.0.0.1:{port}"
LONG_PATH = "/" + "segment-" * 1000 + "?" + "key=value&" * 500


@dataclasses.dataclass
class Case:
    """One item, the run's options, and where the server redirects ``/hop`` requests to."""

    id: str
    item: dict
    options: dict = dataclasses.field(default_factory=dict)
    location: bytes | None = None
    #: Serve on a port below 10000, so that a leading zero still leaves five digits.
    low_port: bool = False

    def bound(self, port: int) -> tuple[dict, dict, bytes | None]:
        """The item, options and Location with ``{port}`` filled in."""
        def fill(value):
            if isinstance(value, str):
                return value.replace("{port}", str(port))
            if isinstance(value, dict):
                return {fill(key): fill(item) for key, item in value.items()}
            return value
        location = self.location.replace(b"{port}", str(port).encode()) \
            if self.location is not None else None
        return fill(self.item), fill(self.options), location


def get(case_id: str, path: str, origin: str = ORIGIN, low_port: bool = False, **item) -> Case:
    return Case(case_id, {"url": origin + path, **item}, low_port=low_port)


URL_CASES = [
    get("dot segments above the root", "/../../anything/r"),
    get("dot segments inside", "/a/../b/./c"),
    get("a trailing dot-dot", "/a/b/.."),
    get("a trailing dot", "/a/."),
    get("only a dot", "/./"),
    get("escaped dot segments", "/a/%2e%2e/b/%2E/c"),
    get("escaped dots and tilde", "/%2e%2e/%7euser/%7E"),
    get("lower-case escapes", "/a%2fb%3a%c3%a9?q=%3d%2f"),
    get("upper-case escapes of unreserved", "/%41%5A%30%2D%5F?%61=%7E"),
    get("upper-case escapes of reserved", "/a%2Fb%3A%C3%A9?q=%3D%26%23"),
    get("an escaped percent and NUL", "/a%25b/%2525/n%00l"),
    get("stray percents", "/100%/x?p=50%&q=%zz"),
    get("a cut escape", "/a%2"),
    get("brackets", "/a[1]/b?c[]=d&e[f]=g"),
    get("pipe, caret, backtick", "/a|b^c`d?e|f^g`h"),
    get("braces", "/{a}/{b}?{c}={d}"),
    get("quotes, angles, backslash", '/a"b<c>d\\e?f"g<h>'),
    get("an empty query", "/x?"),
    get("an empty query and fragment", "/x?#"),
    get("a fragment", "/x#frag"),
    get("a fragment after a query", "/x?a=1#frag?y=2"),
    get("an empty fragment", "/x#"),
    get("a port with a leading zero", "/p", origin="http://127.0.0.1:0{port}", low_port=True),
    get("a port with leading zeros", "/p?", origin="http://127.0.0.1:000{port}"),
    get("an upper-case scheme", "/Up/../Down", origin="HTTP://127.0.0.1:{port}"),
    get("a mixed-case scheme", "/x", origin="hTtP://127.0.0.1:{port}"),
    get("spaces", "/a b/c?d e=f g"),
    get("a tab", "/a\tb"),
    get("non-ASCII", "/café/中文?q=é&ü=€"),
    get("a very long URL", LONG_PATH),
    get("repeated slashes", "//a///b//?c=//d"),
    get("repeated slashes and dot segments", "//a/..//b/./"),
    get(";params", "/a;p=1/b;q=2?x;y"),
    get("@ in the path", "/a@b/@c?d@e"),
    get("every sub-delim", "/a+b!$&'()*,;=:@?q=a+b!$&'()*,;=:@/?"),
    get("a query with slashes and question marks", "/p?a=/b?c"),
    get("dots that are not segments", "/.well-known/..a/.b./c..?d=../e/./f"),
    get("no path", ""),
    get("a query and no path", "?q=1"),
    get("an ordinary URL", "/bytes/1024?page=3"),
]

IPV6_CASES = [
    get("IPv6 loopback", "/a/./b?", origin="http://[::1]:{port}"),
    get("IPv6 loopback written out", "/x", origin="http://[0:0:0:0:0:0:0:1]:{port}"),
    get("IPv6 with a zero-padded port", "/x", origin="http://[::1]:0{port}", low_port=True),
]

MAPPED_CASES = [  # an upper-case host without name resolution: IPv4-mapped IPv6
    get("an upper-case IPv6 host", "/x", origin="http://[::FFFF:7F00:1]:{port}"),
    get("an upper-case mapped IPv4 host", "/x", origin="http://[::FFFF:127.0.0.1]:{port}"),
]

REDIRECT_CASES = [
    Case("a redirect to dot segments", {"url": ORIGIN + "/hop"}, location=b"/a/../b/./c?"),
    Case("a redirect to an absolute URL", {"url": ORIGIN + "/hop"},
         location=b"HTTP://127.0.0.1:{port}/Z/%7e/./q?#frag"),
    Case("a redirect to raw UTF-8 and brackets", {"url": ORIGIN + "/hop"},
         location="/café x/[y]?z=|".encode()),
    Case("a relative redirect", {"url": ORIGIN + "/hop/deeper/"}, location=b"../next?a=%7e"),
    Case("a scheme-relative redirect", {"url": ORIGIN + "/hop"},
         location=b"//127.0.0.1:{port}/scheme-relative"),
    Case("a redirect after dot segments", {"url": ORIGIN + "/x/../hop"}, location=b"/landed"),
    Case("a redirect keeps the fragment", {"url": ORIGIN + "/hop#keep"}, location=b"/landed"),
    Case("a POST redirected", {"url": ORIGIN + "/hop", "method": "POST", "json": {"a": 1},
                               "cookies": {"c": "1"}}, location=b"/landed"),
    Case("a redirect with a Host override", {"url": ORIGIN + "/hop",
                                             "headers": {"Host": "example.test"}},
         location=b"/landed"),
]


def head(case_id: str, method: str = "GET", options: dict | None = None, **item) -> Case:
    return Case(case_id, {"url": ORIGIN + "/h", "method": method, **item}, options or {})


HEADER_CASES = [
    head("odd case", headers={"x-OdD-CaSe": "v", "X-UPPER": "V", "x-lower": "v"}),
    head("run and item headers differing in case",
         headers={"x-dup": "item", "ACCEPT": "text/item"},
         options={"headers": {"X-Dup": "run", "Accept": "text/run", "X-Run": "r"}}),
    head("an empty value", headers={"X-Empty": ""}),
    head("spaces and tabs inside a value", headers={"X-Spaces": "a  b\tc d"}),
    head("User-Agent from the item", headers={"user-agent": "item-agent/1"}),
    head("User-Agent from the option", options={"user_agent": "option-agent/2"}),
    head("User-Agent from the run's headers", options={"headers": {"USER-AGENT": "run/3"}}),
    head("a default removed", headers={"Accept": None}),
    head("defaults removed", headers={"accept-encoding": None, "Connection": None,
                                      "User-Agent": None}),
    head("Accept-Encoding overridden", headers={"accept-encoding": "identity"}),
    head("Host overridden", headers={"Host": "example.test:8080"}),
    head("Host overridden in lower case", headers={"host": "Other.Example"}),
    head("Connection: close", headers={"Connection": "close"}),
    head("many headers", headers={f"X-H{n}": f"v{n}" for n in range(40)}),
    head("form data with its Content-Type", "POST", data="a=1&b=2",
         headers={"Content-Type": "application/x-www-form-urlencoded"}),
    head("bytes data", "PUT", data=b"\x00\xff raw", headers={"content-type": "app/octet"}),
    head("non-ASCII str data", "POST", data="é€ ünï"),
    head("empty data", "POST", data=""),
    head("empty bytes data", "PATCH", data=b""),
    head("a dict of form data", "POST", data={"a": "1", "b": "é"}),
    head("a JSON body", "POST", json={"n": [1, 2], "s": "é", "f": 1.5}),
    head("a JSON body with its own Content-Type", "PATCH", json=[],
         headers={"content-type": "text/x-json"}),
    head("a JSON zero", "PUT", json=0),
    head("a run-level JSON body", "POST", options={"json": {"run": True}}),
    head("DELETE without a body", "DELETE"),
    head("OPTIONS", "OPTIONS", headers={"Accept": None}),
    head("HEAD", "HEAD"),
    head("cookies", cookies={"a": "1", "b": "2"}),
    head("cookies and a JSON body", "POST", cookies={"a": "1"}, json={"x": 1}),
    head("cookies and form data", "POST", cookies={"a": "1"}, data="f=1",
         headers={"Content-Type": "application/x-www-form-urlencoded"}),
    head("cookies from the run and the item", cookies={"item": "i"},
         options={"cookies": {"run": "r", "item": "overridden"}}),
    head("cookies needing quotes", cookies={"q": 'a "b";c'}),
    head("basic auth", options={"auth": ("ann", "sécret")}),
    head("basic auth, cookies and a body", "PUT", data=b"x", cookies={"c": "1"},
         options={"auth": ("ann", "pw")}),
    head("params", params={"q": "a b", "x": ["1", "2"]}),
    head("params and a query", params={"q": "é"}, url=ORIGIN + "/h?z=%7e"),
]

CASES = URL_CASES + REDIRECT_CASES + HEADER_CASES


class CapturingServer:
    """A raw-socket HTTP/1.1 server: keeps the exact bytes of every request it receives and
    answers each with a fixed 200, or a 302 to ``location`` when the target starts with /hop."""

    body = b"ok"

    def __init__(self, host: str = "127.0.0.1", low_port: bool = False) -> None:
        self.host = host
        self.location: bytes | None = None
        self.received: list[bytes] = []
        self._listener = gevent.server.StreamServer(
            _listening_socket(host) if low_port else (host, 0), self._handle)

    def __enter__(self) -> "CapturingServer":
        self._listener.start()
        self.port = self._listener.server_port
        return self

    def __exit__(self, *exc_info) -> None:
        self._listener.stop()

    def _handle(self, sock: socket.socket, _address) -> None:
        with sock.makefile("rb") as stream:
            self._answer(sock, stream)

    def _answer(self, sock: socket.socket, stream) -> None:
        while True:
            request = b""
            while not request.endswith(b"\r\n\r\n"):
                line = stream.readline()
                if not line:
                    return  # the client closed the connection
                request += line
            length = re.search(rb"\r\ncontent-length:[ \t]*(\d+)", request, re.IGNORECASE)
            if length:
                request += stream.read(int(length.group(1)))
            self.received.append(request)
            method, target = request.split(b" ", 2)[:2]
            if target.startswith(b"/hop") and self.location is not None:
                answer = b"HTTP/1.1 302 Found\r\nLocation: " + self.location + \
                         b"\r\nContent-Length: 0\r\n\r\n"
            else:
                answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" \
                         b"Content-Length: %d\r\n\r\n" % len(self.body)
                if method != b"HEAD":
                    answer += self.body
            closing = b"\r\nconnection: close\r\n" in request.lower()
            if closing:  # said in the answer too (RFC 9112 9.6), or a client may reuse it
                answer = answer.replace(b"\r\n", b"\r\nConnection: close\r\n", 1)
            sock.sendall(answer)
            if closing:
                sock.close()
                return


def _listening_socket(host: str) -> socket.socket:
    """A socket listening on a free port below 10000 (port 0 picks five-digit ones here)."""
    for port in random.sample(range(1024, 10000), 200):
        listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        try:
            listener.bind((host, port))
        except OSError:
            listener.close()
            continue
        listener.listen()
        return listener
    pytest.skip("no free port below 10000")


def row_facts(row) -> dict:
    """Everything a row says about the exchange, except how long it took."""
    facts = dataclasses.asdict(row)
    facts.pop("elapsed")
    return facts


def fetch_both_paths(case: Case, host: str = "127.0.0.1") -> list[tuple[str, list, dict]]:
    """(transport, bytes received, row facts) for requests' path (first), every other
    transport, and plain requests (last)."""
    seen = []
    choices = sorted((choice for choice in TRANSPORTS if choice.available),
                     key=lambda choice: choice.name != REFERENCE)
    with CapturingServer(host, case.low_port) as server:
        item, options, server.location = case.bound(server.port)
        for choice in choices:
            server.received.clear()
            table = fetch_all([item], retries=0, **{**options, **choice.chosen_by})
            seen.append((choice.name, list(server.received), row_facts(table[0])))
        server.received.clear()
        row = plain_requests_row(to_spec(item, FetchOptions(**options)), FetchOptions(**options))
        seen.append(("plain requests", list(server.received), row))
    return seen


def plain_requests_row(spec, options: FetchOptions) -> dict:
    """What a plain requests.Session with batchfetch's User-Agent says about the item."""
    with requests.Session() as session:
        session.trust_env = False
        session.headers["User-Agent"] = options.user_agent
        response = session.request(spec.method, spec.url, headers=spec.headers,
                                   params=spec.params, data=spec.data, json=spec.json,
                                   cookies=spec.cookies, auth=options.auth,
                                   stream=True)
        response.content  # noqa: B018 - read it all, as a row does
        return {"status": response.status_code, "reason": response.reason,
                "final_url": response.url}


def assert_same(seen: list[tuple[str, list, dict]]) -> None:
    (_, full_bytes, full_row), *others, (_, plain_bytes, plain_row) = seen
    assert full_bytes, "the server received nothing"
    for name, sent, row in others:
        assert sent == full_bytes, name
        assert row == full_row, name
    assert plain_bytes == full_bytes, "plain requests"
    assert plain_row == {key: full_row[key] for key in plain_row}, "plain requests"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_both_paths_send_the_same_bytes_and_rows(case):
    assert_same(fetch_both_paths(case))


def _can_bind(host: str) -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind((host, 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("case", IPV6_CASES, ids=[case.id for case in IPV6_CASES])
def test_both_paths_send_the_same_bytes_to_ipv6_hosts(case):
    if not socket.has_ipv6 or not _can_bind("::1"):
        pytest.skip("this machine has no IPv6 loopback")
    assert_same(fetch_both_paths(case, host="::1"))


def _reaches_ipv4_through_mapped_addresses() -> bool:
    with CapturingServer() as server, socket.socket(socket.AF_INET6) as client:
        try:
            client.connect(("::ffff:127.0.0.1", server.port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize("case", MAPPED_CASES, ids=[case.id for case in MAPPED_CASES])
def test_both_paths_send_the_same_bytes_to_upper_case_hosts(case):
    if not socket.has_ipv6 or not _reaches_ipv4_through_mapped_addresses():
        pytest.skip("this machine does not map IPv4 into IPv6")
    assert_same(fetch_both_paths(case))


def test_a_batch_of_the_corpus_sends_the_same_bytes_in_the_same_order():
    """One run, one connection: what a transport remembers between requests (pools, encoded
    header lines, wire headers) never leaks from one item into the next."""
    cases = [case for case in URL_CASES + HEADER_CASES if not case.options] * 2
    seen = []
    with CapturingServer() as server:
        items = [case.bound(server.port)[0] for case in cases]
        for choice in AVAILABLE:
            server.received.clear()
            table = fetch_all(items, retries=0, concurrency=1, **choice.chosen_by)
            seen.append((list(server.received), [row_facts(row) for row in table]))
    assert all(each == seen[0] for each in seen[1:]) and len(seen) == len(AVAILABLE)
    assert len(seen[0][0]) == len([row for row in seen[0][1] if row["status"]])


def test_worker_processes_send_the_same_bytes_and_rows_as_one_process(shares_at_once):
    """workers=2 shares the same corpus between this process and a worker process (given
    its share as soon as it starts, busy or not): the requests they send (in whatever
    order) and the rows are those of one process."""
    cases = [case for case in URL_CASES + HEADER_CASES if not case.options]
    seen = []
    with CapturingServer() as server:
        items = [case.bound(server.port)[0] for case in cases]
        for workers in (1, 2):
            server.received.clear()
            table = fetch_all(items, retries=0, workers=workers, concurrency=2,
                              max_pending=4)  # items this process has not started go over
            seen.append((sorted(server.received), [row_facts(row) for row in table]))
    assert seen[0] == seen[1]
