"""LeanSession sends what requests' full path would send, byte for byte where it matters."""
import datetime
import json
import pickle

import pytest
import requests

from batchfetch.transport.fastpath import LeanSession

CASES = [
    {"method": "GET", "url": "/echo?a=1&b=%20x"},
    {"method": "POST", "url": "/echo", "json": {"n": [1, 2], "s": "é"}},
    {"method": "POST", "url": "/echo", "data": "a=1&b=2",
     "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
    {"method": "PUT", "url": "/echo", "data": b"\x00\xff raw"},
    {"method": "DELETE", "url": "/echo"},
    {"method": "POST", "url": "/echo", "data": ""},
    {"method": "PATCH", "url": "/echo", "json": [], "headers": {"content-type": "text/x"}},
    {"method": "GET", "url": "/echo", "auth": ("ann", "sécret"), "cookies": {"a": "1", "b": "2"},
     "headers": {"X-One": "1", "Accept": None, "user-agent": "mine"}},
    {"method": "GET", "url": "/echo", "headers": {"X-One": "1"}},
    {"method": "GET", "url": "/echo", "headers": {"X-One": "2", "Accept": None}},
    {"method": "OPTIONS", "url": "/echo", "headers": {"X-One": "2", "Accept": None}},
]


def sessions():
    lean, full = LeanSession(), requests.Session()
    for session in (lean, full):
        session.trust_env = False
    return lean, full


@pytest.mark.parametrize("case", CASES, ids=[c["method"] + c["url"] for c in CASES])
def test_lean_and_full_paths_send_the_same_request(server, case):
    lean, full = sessions()
    kwargs = {key: value for key, value in case.items() if key not in ("method", "url")}
    seen = []
    for session in (lean, full):
        response = session.request(case["method"], server.url(case["url"]), **kwargs)
        assert response.status_code == 200
        echoed = json.loads(response.content)
        echoed["headers"] = {k.lower(): v for k, v in echoed["headers"].items()}
        seen.append((echoed, response.url, response.reason, dict(response.headers)))
    assert seen[0][0] == seen[1][0]
    assert seen[0][1:3] == seen[1][1:3]


def test_one_lean_session_sends_each_request_right_after_the_others(server):
    """Wire headers are remembered per (method, headers): repeats and neighbours stay exact."""
    lean, full = sessions()
    seen = []
    for session in (lean, full):
        echoes = []
        for case in CASES + CASES[::-1]:
            kwargs = {key: value for key, value in case.items() if key not in ("method", "url")}
            response = session.request(case["method"], server.url(case["url"]), **kwargs)
            echoed = json.loads(response.content)
            echoes.append({k.lower(): v for k, v in echoed["headers"].items()})
        seen.append(echoes)
    assert seen[0] == seen[1]


def test_lean_responses_read_like_requests_responses(server):
    lean, full = sessions()
    seen = []
    for session in (lean, full):
        response = session.request("GET", server.url("/cookies/set?a=1&b=2"))
        copy = pickle.loads(pickle.dumps(response))
        seen.append((response.headers["CONTENT-TYPE"], response.headers.get("set-cookie"),
                     "content-length" in response.headers, response.encoding,
                     response.elapsed >= datetime.timedelta(0), response.is_redirect,
                     copy.status_code, copy.headers["content-length"], copy.content))
    assert seen[0] == seen[1]
    assert seen[0][1] == "a=1; Path=/, b=2; Path=/"


def test_plain_requests_skip_preparation_and_others_do_not(server):
    lean, _ = sessions()
    plain = lean.request("GET", server.url("/ok"))
    assert plain.status_code == 200 and plain.request is None  # nothing was prepared
    with_params = lean.request("GET", server.url("/ok"), params={"a": "1"})
    assert isinstance(with_params.request, requests.PreparedRequest)
    needs_quoting = lean.request("GET", server.url("/echo/with space"))
    assert needs_quoting.request is not None and needs_quoting.url.endswith("with%20space")


def test_redirects_are_followed_as_requests_does(server):
    lean, full = sessions()
    results = []
    for session in (lean, full):
        response = session.request("POST", server.url("/redirect/2"), json={"a": 1})
        results.append((response.status_code, response.url,
                        [r.status_code for r in response.history],
                        response.request.method))
    assert results[0] == results[1] == (200, server.url("/redirect/0"), [302, 302], "GET")


@pytest.mark.parametrize("path, timeout, error", [
    ("/fault/reset", None, requests.ConnectionError),
    ("/fault/hang", 0.3, requests.ReadTimeout),
    ("/fault/garbage", None, requests.ConnectionError),
])
def test_errors_are_the_same_requests_exceptions(server, path, timeout, error):
    """Only the hang has a read timeout: a reset or garbage answer late by 0.3 s on a busy
    machine was a ReadTimeout instead of the error under test."""
    lean, full = sessions()
    for session in (lean, full):
        with pytest.raises(error):
            session.request("GET", server.url(path), timeout=timeout).content


def test_cli_rows_are_the_same_on_both_paths(server):
    """--no-fast-path (and the default fast path) give the same rows for a mixed batch."""
    from click.testing import CliRunner

    from batchfetch.cli import main

    urls = "\n".join(server.url(path) for path in (
        "/json", "/status/404", "/redirect/2", "/echo?x=1", "/fault/reset", "/echo/a b"))
    outputs = []
    for flag in ("--fast-path", "--no-fast-path"):
        result = CliRunner().invoke(main, ["-q", "-f", "jsonl", "-r", "0", "--body", flag],
                                    input=urls + "\n")
        assert result.exit_code == 1, result.output
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        for row in rows:
            row.pop("elapsed")
        outputs.append(sorted(rows, key=lambda row: row["index"]))
    assert [row["error"] for row in outputs[0]] == ["", "http", "", "", "reset", "http"]
    assert outputs[0] == outputs[1]
