"""exception_handler sees the same exception whichever path sent the request (issue 13, item 9).

For each failure that reaches ``exception_handler``, a one-item batch runs on every transport
(``batchfetch.transport.TRANSPORTS``); the handler must get the same exception class and message (memory
addresses aside), the same ``exc.request`` (method, URL, headers in order, body; or None on
both) and a response on both or on neither.
"""
import re

import pytest

from batchfetch import fetch_all
from batchfetch.testing import refused_url
from batchfetch.transport import TRANSPORTS

#: Every transport, requests' own path (the reference) first.
CHOICES = sorted((choice for choice in TRANSPORTS if choice.available),
                 key=lambda choice: choice.name != "requests")

BODY_ITEM = {"method": "POST", "json": {"n": 1}, "cookies": {"c": "1"},
             "headers": {"X-Item": "i", "Accept": None}}

#: name -> (path on the loopback server, or a full URL; item keys; fetch_all options)
FAILURES = {
    "refused": (None, {}, {}),
    "refused, with a body, cookies, auth and headers": (
        None, BODY_ITEM, {"auth": ("ann", "pw"), "headers": {"X-Run": "r"}}),
    "read timeout": ("/fault/hang", {}, {"timeout": 0.3}),
    "read timeout with a str body": ("/fault/hang", {"method": "PUT", "data": "é"},
                                     {"timeout": 0.3}),
    "reset": ("/fault/reset", {}, {}),
    "reset, with a body": ("/fault/reset", BODY_ITEM, {}),
    "closed without a response": ("/fault/close", {}, {}),
    "garbage": ("/fault/garbage", {}, {}),
    "truncated body": ("/fault/truncated", {}, {}),
    "reset in the body": ("/fault/reset-body", {}, {}),
    "too many redirects": ("/redirect-loop", {}, {"max_redirects": 2}),
    "a redirect to a refused port": ("/redirect-to?url={refused}", {}, {}),
    "http status": ("/status/503", {}, {}),
    "deadline": ("/fault/hang", {}, {"deadline": 0.3}),
    "too large": ("/bytes/1000", {}, {"max_bytes": 10}),
    # Several reads before the cap: the row's size (bytes read when it was hit) matches too.
    "too large after several reads": ("/bytes/2000000", {}, {"max_bytes": 300_000}),
    "too large after several chunked reads": ("/bytes/2000000?chunked=1", {},
                                              {"max_bytes": 300_000}),
    "invalid URL": ("http://[1.2.3.4]/", {}, {}),
}


def describe(exc: BaseException) -> dict:
    """What a handler can see of an exception, with memory addresses left out."""
    request = getattr(exc, "request", None)
    return {
        "type": type(exc),
        "message": re.sub(r"0x[0-9a-fA-F]+", "0x...", str(exc)),
        "request": None if request is None else {
            "type": type(request), "method": request.method, "url": request.url,
            "headers": list(request.headers.items()), "body": request.body},
        "has response": getattr(exc, "response", None) is not None,
    }


def handled(item, choice, **options) -> dict:
    seen = []
    table = fetch_all([item], retries=0, exception_handler=lambda _item, exc: seen.append(exc),
                      **{**options, **choice.chosen_by})
    assert len(seen) == 1 and not table[0].ok
    return {"error": table[0].error, "size": table[0].size, **describe(seen[0])}


@pytest.mark.parametrize("name", FAILURES)
def test_exception_handler_sees_the_same_exception_on_both_paths(server, name):
    where, item, options = FAILURES[name]
    refused = refused_url("/gone")
    if where is None:
        url = refused
    elif where.startswith("/"):
        url = server.url(where.replace("{refused}", refused))
    else:
        url = where
    reference, *others = (handled({"url": url, **item}, choice, **options) for choice in CHOICES)
    if not name.startswith("too large"):
        # A body cut by the server: requests' path counts only the chunks urllib3 handed
        # over before the cut (64 KiB steps), the native one every byte that arrived.
        for described in (reference, *others):
            del described["size"]
    assert all(other == reference for other in others)


def test_a_refused_request_carries_what_was_sent(server):
    """Not only the same on both paths: the request is the one that went out."""
    seen = handled({"url": refused_url("/x"), **BODY_ITEM}, CHOICES[-1], auth=("ann", "pw"))
    request = seen["request"]
    assert seen["error"] == "connect"
    assert (request["method"], request["body"]) == ("POST", b'{"n": 1}')
    assert [name for name, _ in request["headers"]] == [
        "User-Agent", "Accept-Encoding", "Connection", "X-Item", "Cookie", "Content-Length",
        "Content-Type", "Authorization"]


def test_a_tls_failure_is_the_same_on_both_paths(tls_server):
    server, _ca_path = tls_server  # not trusted: verification fails
    reference, *others = (handled({"url": server.url("/ok"), "headers": {"X-A": "1"}}, choice)
                          for choice in CHOICES)
    assert reference["error"] == "tls"
    assert all(other == reference for other in others)


def test_a_send_that_times_out_is_the_same_on_both_paths():
    """A server that never reads: the kernel takes the first bytes of a 20 MB body, then
    sending stalls until the timeout (requests: "Connection aborted", not a read timeout)."""
    import socket

    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # never accepted: the kernel holds what fits, then stalls
        item = {"url": f"http://127.0.0.1:{listener.getsockname()[1]}/upload",
                "method": "POST", "data": b"x" * 20_000_000}
        reference, *others = (handled(item, choice, timeout=0.5) for choice in CHOICES)
    assert reference["type"].__name__ == "ConnectionError"
    assert "Connection aborted" in reference["message"]
    assert all(other == reference for other in others)
