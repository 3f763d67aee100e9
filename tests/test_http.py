"""The native transport reads every answer as requests' path reads it: a raw server on
127.0.0.1 sends well-formed and malformed responses, and LeanSession (llhttp, with
http.client taking over heads llhttp refuses) and requests' own path must report the same
status, reason, headers and body, or the same error kind and message."""
import gzip
import json
import urllib.parse

import gevent
import gevent.server
import pytest

from batchfetch import fetch_all
from batchfetch.errors import classify
from batchfetch.transport.fastpath import LeanSession
from batchfetch.transport.hops import HopSession

S = b"HTTP/1.1 200 OK\r\n"
RESPONSES = {
  "plain": S + b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
  "repeated": S + b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nok",
  "blanks": S + b"X-A:\t  spaced value  \r\nX-B:\r\nX-C:   \r\nContent-Length: 2\r\n\r\nok",
  "bare LF": b"HTTP/1.1 200 OK\nX-A: 1\nContent-Length: 2\n\nok",
  "latin-1": S + b"X-Name: caf\xe9\r\nContent-Length: 2\r\n\r\nok",
  "folded": S + b"X-A: one\r\n two\r\nContent-Length: 2\r\n\r\nok",
  "space before colon": S + b"X-A : 1\r\nContent-Length: 2\r\n\r\nok",
  "no colon": S + b"garbage line\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nok",
  "stray CR": S + b"X-A: 1\rX-B: 2\r\nContent-Length: 2\r\n\r\nok",
  "no reason": b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok",
  "HTTP/1.0": b"HTTP/1.0 200 OK\r\n\r\nclose-delimited",
  "chunked": S + b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n",
  "chunked cut": S + b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n10\r\nabc",
  "longer than CL": S + b"Content-Length: 2\r\n\r\nokEXTRA",
  "duplicate CL": S + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\nok",
  "conflicting CL": S + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
  "CL and TE": S + b"Content-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
  "negative CL": S + b"Content-Length: -1\r\n\r\nok",
  "bad CL": S + b"Content-Length: abc\r\n\r\nok",
  "status 2000": b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
  "status 99": b"HTTP/1.1 099 X\r\nContent-Length: 2\r\n\r\nok",
  "HTTP/2.0 line": b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
  "lowercase http": b"http/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
  "100 continue first": b"HTTP/1.1 100 Continue\r\n\r\n" + S + b"Content-Length: 2\r\n\r\nok",
  "103 early hints first": b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + S
  + b"Content-Length: 2\r\n\r\nok",
  "reason with spaces": b"HTTP/1.1 404  Not Found  \r\nContent-Length: 2\r\n\r\nok",
  "204 with body": b"HTTP/1.1 204 No Content\r\n\r\n",
  "long header": S + b"X-Long: " + b"a" * 70000 + b"\r\nContent-Length: 2\r\n\r\nok",
  "many headers": S + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"Content-Length: 2\r\n\r\nok",
  "gzip": S + b"Content-Encoding: gzip\r\nContent-Length: 22\r\n\r\n" + gzip.compress(b"ok", mtime=0),
  "bad gzip": S + b"Content-Encoding: gzip\r\nContent-Length: 5\r\n\r\nnotgz",
  "trailing space in value": S + b"X-A: 1 \r\nContent-Length: 2\r\n\r\nok",
  "empty name": S + b": 1\r\nContent-Length: 2\r\n\r\nok",
  "NUL in value": S + b"X-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
  "utf-8 in reason": b"HTTP/1.1 200 \xc3\xa9\r\nContent-Length: 2\r\n\r\nok",
}

#: Where the two paths may word a message differently (same kind): http.client counts the
#: bytes of the cut chunk, llhttp those of the cut body.
SAME_KIND_ONLY = {"chunked cut"}


@pytest.fixture(scope="module")
def raw_server():
    def handle(sock, _address):
        stream = sock.makefile("rb")
        line = stream.readline()
        while stream.readline() not in (b"\r\n", b""):
            pass
        answer = RESPONSES[urllib.parse.unquote(line.split()[1].decode()[1:])]
        if answer is SPLIT:
            for piece in SPLIT_PIECES:
                sock.sendall(piece)
                gevent.sleep(0.02)
        else:
            sock.sendall(answer)
        sock.close()

    listener = gevent.server.StreamServer(("127.0.0.1", 0), handle)
    listener.start()
    yield f"http://127.0.0.1:{listener.server_port}/"
    listener.stop()


#: A head cut into single bytes, then a body longer than its Content-Length in a later read.
SPLIT = b"split"
SPLIT_PIECES = [*(bytes([byte]) for byte in b"HTTP/1.1 200 OK\r\nX-Long-Name: value\r\n"),
                b"Content-Length: 4\r\n\r\nab", b"cdEXTRA"]
RESPONSES["split head, extra bytes later"] = SPLIT


def outcome(session, base: str, name: str):
    try:
        response = session.request("GET", base + urllib.parse.quote(name), timeout=5,
                                   stream=True)
        return ("ok", response.status_code, response.reason, list(response.headers.items()),
                response.content)
    except Exception as exc:  # noqa: BLE001 - the error is what is compared
        return ("error", *classify(exc))


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_both_paths_read_the_same_answer(raw_server, name):
    native = outcome(LeanSession(), raw_server, name)
    reference = outcome(HopSession(), raw_server, name)
    if name in SAME_KIND_ONLY:
        assert native[:2] == reference[:2]
    else:
        assert native == reference


@pytest.mark.usefixtures("both_paths")
def test_responses_with_repeated_and_odd_headers_become_rows(server):
    table = fetch_all([server.url("/cookies/set?a=1&b=2"), server.url("/status/503"),
                       server.url("/redirect/2")], retries=0)
    assert [row.status for row in table] == [200, 503, 200]
    assert table[2].final_url == server.url("/redirect/0")


@pytest.mark.usefixtures("both_paths")
def test_a_body_larger_than_one_send_arrives_whole(server):
    body = "0123456789" * 500_000  # 5 MB: the kernel takes it in several sends
    table = fetch_all([{"url": server.url("/echo"), "method": "POST", "data": body}],
                      keep_body=True)
    assert table[0].ok
    assert json.loads(table[0].body)["body"] == body
