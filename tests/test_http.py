"""batchfetch.transport.wire: cheaper header parsing and sends, checked against http.client itself."""
import http.client
import io
import json

import pytest

from batchfetch import fetch_all
from batchfetch.transport.wire import parse_header_lines

pytestmark = pytest.mark.usefixtures("both_paths")

HEADER_BLOCKS = {
    "plain": b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n",
    "repeated": b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-A: 1\r\n\r\n",
    "blanks around values": b"X-A:\t  spaced value  \r\nX-B:\r\nX-C:   \r\n\r\n",
    "bare LF line ends": b"X-A: 1\nX-B: 2\n\n",
    "latin-1 bytes": b"X-Name: caf\xe9\r\n\r\n",
    "colon in value": b"Location: http://127.0.0.1:8/a?b=c:d\r\n\r\n",
    "folded": b"X-A: one\r\n two\r\nX-B: 3\r\n\r\n",
    "space before colon": b"X-A : 1\r\n\r\n",
    "no colon": b"garbage line\r\nX-A: 1\r\n\r\n",
    "stray CR": b"X-A: 1\rX-B: 2\r\n\r\n",
    "unix from": b"From nobody\r\nX-A: 1\r\n\r\n",
    "cut before the blank line": b"X-A: 1\r\n",
    "empty": b"\r\n",
}


def lines_of(block: bytes) -> list[bytes]:
    stream = io.BytesIO(block)
    lines = []
    while True:
        line = stream.readline()
        lines.append(line)
        if line in (b"\r\n", b"\n", b""):
            return lines


@pytest.mark.parametrize("name", sorted(HEADER_BLOCKS))
def test_header_blocks_parse_as_http_client_parses_them(name):
    block = HEADER_BLOCKS[name]
    expected = http.client.parse_headers(io.BytesIO(block))
    parsed = parse_header_lines(lines_of(block))
    assert type(parsed) is http.client.HTTPMessage
    assert parsed.items() == expected.items()
    assert [type(defect) for defect in parsed.defects] == [
        type(defect) for defect in expected.defects]
    # urllib3 logs a parsing problem when the message has a payload: the same either way.
    assert bool(parsed.get_payload()) == bool(expected.get_payload())


def test_responses_with_repeated_and_odd_headers_become_rows(server):
    table = fetch_all([server.url("/cookies/set?a=1&b=2"), server.url("/status/503"),
                       server.url("/redirect/2")], retries=0)
    assert [row.status for row in table] == [200, 503, 200]
    assert table[2].final_url == server.url("/redirect/0")


def test_a_body_larger_than_one_send_arrives_whole(server):
    body = "0123456789" * 500_000  # 5 MB: the kernel takes it in several sends
    table = fetch_all([{"url": server.url("/echo"), "method": "POST", "data": body}],
                      keep_body=True)
    assert table[0].ok
    assert json.loads(table[0].body)["body"] == body


def test_a_connection_sends_what_urllib3_sends_request_after_request():
    """Header lines remembered per connection: same bytes as urllib3's own connection, for
    repeats, neighbours, SKIP_HEADER, int and bool values, and refused values every time."""
    import gevent.server
    import urllib3
    from urllib3.util import SKIP_HEADER

    from batchfetch.transport.wire import LeanSends

    class Lean(LeanSends, urllib3.connection.HTTPConnection):
        pass

    heads = []

    def handle(sock, _address):
        stream = sock.makefile("rb")
        while True:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = stream.readline()
                if not line:
                    return
                head += line
            heads.append(head)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    requests_sent = [
        ("GET", "/a", {"X-A": "1"}),
        ("GET", "/b", {"X-A": "1"}),
        ("GET", "/c", {"X-A": "2", "User-Agent": SKIP_HEADER}),
        ("HEAD", "/d", {"X-A": 1, "X-B": True}),
        ("GET", "/e", {"X-A": True, "X-B": 1}),
        ("DELETE", "/f", {"x-a": "1", "Accept-Encoding": "gzip"}),
        ("GET", "/g", {"X-A": "1"}),
    ]
    listener = gevent.server.StreamServer(("127.0.0.1", 0), handle)
    listener.start()
    try:
        seen = []
        for cls in (Lean, urllib3.connection.HTTPConnection):
            heads.clear()
            conn = cls("127.0.0.1", listener.server_port)
            for method, path, headers in requests_sent + requests_sent:
                conn.request(method, path, headers=headers)
                conn.getresponse().read()
                with pytest.raises(ValueError):
                    conn.request("GET", "/bad", headers={"X-A": "line\r\nbreak"})
                conn.close()  # a refused request leaves the connection mid-request
            seen.append(list(heads))
    finally:
        listener.stop()
    assert len(seen[0]) == 2 * len(requests_sent)
    assert seen[0] == seen[1]
    assert b"X-A: True\r\nX-B: 1\r\n" in seen[0][4]
