"""fetch_all against the loopback server: rows, error kinds, overrides, cookies, pooling."""
import json

import pytest

from batchfetch import FetchOptions, FetchResult, OptionError, ResultTable, fetch_all
from batchfetch.testing import refused_url

pytestmark = pytest.mark.usefixtures("both_paths")

FAST = {"retries": 0}


def oks_and_fails(table):
    return len(table.succeeded), len(table.failed)



def test_success_row_has_every_column(server):
    table = fetch_all([server.url("/bytes/1234")], **FAST)
    assert isinstance(table, ResultTable) and len(table) == 1
    row = table[0]
    assert isinstance(row, FetchResult)
    assert (row.index, row.ok, row.status, row.reason, row.error, row.message) == \
        (0, True, 200, "OK", "", "")
    assert row.size == 1234 and row.attempts == 1 and row.body is None
    assert row.final_url == server.url("/bytes/1234")
    assert row.content_type == "application/octet-stream"
    assert row.elapsed > 0
    assert oks_and_fails(table) == (1, 0)


def test_keep_body_keeps_decoded_bytes(server):
    row = fetch_all([server.url("/gzip/5000")], keep_body=True, **FAST)[0]
    assert row.ok and row.body == b"\0" * 5000 and row.size == 5000


ELEVEN_MIB = 11 * 1024 * 1024


def test_kept_bodies_are_capped_by_default(server):
    """Issue 13, item 1: with keep_body and no max_bytes a gzip bomb was read whole."""
    bomb = server.url(f"/gzip/{1 << 40}")
    row = fetch_all([bomb], keep_body=True, **FAST)[0]
    assert (row.status, row.error, row.body) == (200, "too_large", None)
    assert 10 * 1024 * 1024 < row.size < ELEVEN_MIB
    assert row.message == ("kept body exceeded 10485760 bytes, the cap of max_bytes='auto' "
                           "(raise it with max_bytes or --max-bytes; None or 'none': no cap)")


def test_counted_bodies_are_not_capped_and_none_lifts_the_cap(server):
    counted = fetch_all([server.url(f"/gzip/{ELEVEN_MIB}")], **FAST)[0]
    assert (counted.ok, counted.size, counted.body) == (True, ELEVEN_MIB, None)
    kept = fetch_all([server.url(f"/gzip/{ELEVEN_MIB}")], keep_body=True, max_bytes=None,
                     **FAST)[0]
    assert kept.ok and kept.body == b"\0" * ELEVEN_MIB


def test_status_outside_ok_status_is_an_http_error(server):
    table = fetch_all([server.url("/status/404"), server.url("/status/500")], **FAST)
    assert [(r.status, r.error, r.message, r.ok) for r in table] == [
        (404, "http", "404 Not Found", False),
        (500, "http", "500 Internal Server Error", False)]


def test_ok_status_accepts_ranges(server):
    table = fetch_all([server.url("/status/404"), server.url("/status/201")],
                      ok_status="200-299,404", **FAST)
    assert [row.ok for row in table] == [True, True]
    strict = fetch_all([server.url("/status/201")], ok_status=[200], **FAST)
    assert strict[0].error == "http"


@pytest.mark.parametrize("path, options, kind", [
    ("/fault/hang", {"timeout": 0.3}, "timeout"),
    ("/fault/slow-headers?delay=2", {"timeout": 0.3}, "timeout"),
    ("/fault/reset", {}, "reset"),
    ("/fault/close", {}, "reset"),
    ("/fault/truncated?length=1000&send=10", {}, "truncated"),
    ("/fault/reset-body", {}, "reset"),
    ("/fault/garbage", {}, "protocol"),
    ("/redirect-loop", {"max_redirects": 5}, "too_many_redirects"),
    ("/fault/trickle?interval=0.2&bytes=50", {"deadline": 0.5}, "deadline"),
    ("/fault/hang", {"deadline": 0.3, "timeout": 5}, "deadline"),
    ("/bytes/100000", {"max_bytes": 1000}, "too_large"),
])
def test_fault_becomes_its_error_kind(server, path, options, kind):
    row = fetch_all([server.url(path)], **{**FAST, **options})[0]
    assert (row.ok, row.error) == (False, kind), row.message
    assert row.message
    assert row.attempts == 1


def test_refused_port_is_connect(server):
    row = fetch_all([refused_url()], **FAST)[0]
    assert (row.status, row.error) == (None, "connect")
    assert "refused" in row.message.lower()


def test_redirects_followed_and_counted(server):
    row = fetch_all([server.url("/redirect/3")], **FAST)[0]
    assert row.ok and row.status == 200 and row.final_url == server.url("/redirect/0")
    not_followed = fetch_all([server.url("/redirect/3")], allow_redirects=False, **FAST)[0]
    assert not_followed.status == 302 and not_followed.ok


BAD_ITEMS = [
    ("not a url", "invalid_url"),
    ("ftp://x", "invalid_url"),
    ("http://", "invalid_url"),
    ("http://[::1", "invalid_url"),
    ("http://exa mple.com", "invalid_url"),
    ("", "invalid_url"),
    ({"url": "http://127.0.0.1/", "method": "FROB"}, "invalid_request"),
    ({"method": "POST"}, "invalid_request"),
    ({"url": "http://127.0.0.1/", "colour": "red"}, "invalid_request"),
    ({"url": "http://127.0.0.1/", "headers": ["x"]}, "invalid_request"),
    (42, "invalid_request"),
]


@pytest.mark.parametrize("item, kind", BAD_ITEMS)
def test_bad_input_becomes_an_error_row(item, kind):
    table = fetch_all([item])
    assert len(table) == 1
    row = table[0]
    assert (row.ok, row.error, row.status, row.attempts) == (False, kind, None, 0)
    assert row.message


def test_long_url_and_path_with_spaces_are_sent(server):
    long_path = "/echo?pad=" + "x" * 10_000
    table = fetch_all([server.url(long_path), server.url("/echo/with space")], keep_body=True,
                      **FAST)
    long_echo = json.loads(table[0].body)
    assert table[0].ok and long_echo["query"]["pad"] == "x" * 10_000
    # The path with a space is quoted and sent; the server has no such route.
    assert table[1].status == 404 and table[1].error == "http"
    assert server.hits["/echo/with%20space"] == 1


def test_empty_input_gives_an_empty_table():
    table = fetch_all([])
    assert len(table) == 0 and oks_and_fails(table) == (0, 0)
    assert table.summary().total == 0


def test_one_row_per_input_in_a_mixed_batch(server):
    """The hangs need a read timeout, and the inputs that succeed must beat it: 2 s, not
    the half second that a loaded machine could use up."""
    items = [
        server.url("/ok"), "not a url", server.url("/status/503"), server.url("/fault/reset"),
        server.url("/fault/hang"), server.url("/fault/garbage"), refused_url(),
        {"url": server.url("/echo"), "method": "POST", "json": {"n": 1}, "id": "rpc-1"},
        {"method": "GET"}, server.url("/fault/truncated"), server.url("/redirect-loop"),
        server.url("/bytes/10"),
    ] * 3
    table = fetch_all(items, concurrency=8, timeout=2, retries=0, max_redirects=3)
    assert [row.index for row in table] == list(range(len(items)))
    expected = ["", "invalid_url", "http", "reset", "timeout", "protocol", "connect", "",
                "invalid_request", "truncated", "too_many_redirects", ""] * 3
    assert [row.error for row in table] == expected
    assert [row.id for row in table][7] == "rpc-1"


def test_per_item_overrides_reach_the_server(server):
    items = [
        {"url": server.url("/echo"), "method": "POST", "json": {"rpc": "add", "args": [1, 2]},
         "headers": {"X-Trace": "item"}, "params": {"page": "2"}, "id": 7},
        {"url": server.url("/echo"), "method": "put", "data": "raw body", "id": [1, "a"]},
        server.url("/echo"),
    ]
    table = fetch_all(items, headers={"X-Trace": "run", "X-Team": "a"}, params={"page": "1"},
                      json={"default": True}, method="PATCH", keep_body=True, **FAST)
    first, second, third = (json.loads(row.body) for row in table)
    assert first["method"] == "POST" and first["json"] == {"rpc": "add", "args": [1, 2]}
    assert first["headers"]["X-Trace"] == "item" and first["headers"]["X-Team"] == "a"
    assert first["query"] == {"page": "2"}
    assert second["method"] == "PUT" and second["body"] == "raw body" and second["json"] is None
    assert third["method"] == "PATCH" and third["json"] == {"default": True}
    assert third["headers"]["X-Trace"] == "run" and third["query"] == {"page": "1"}
    assert [row.id for row in table] == [7, [1, "a"], None]
    assert [row.method for row in table] == ["POST", "PUT", "PATCH"]


def test_user_agent_and_basic_auth(server):
    body = fetch_all([server.url("/echo")], auth=("ann", "secret"), user_agent="probe/1",
                     keep_body=True, **FAST)[0].body
    headers = json.loads(body)["headers"]
    assert headers["User-Agent"] == "probe/1"
    assert headers["Authorization"] == "Basic YW5uOnNlY3JldA=="


def test_cookies_set_by_a_response_do_not_leak_to_other_items(server):
    """The shared session's jar must stay empty: each API call is its own session."""
    items = [server.url("/cookies/set?session=abc")] + [server.url("/cookies")] * 5
    table = fetch_all(items, concurrency=1, keep_body=True, **FAST)
    assert all(row.ok for row in table)
    for row in table[1:]:
        assert json.loads(row.body)["cookies"] == {}


def test_cookie_option_applies_to_every_item_and_items_override(server):
    items = [server.url("/cookies"),
             {"url": server.url("/cookies"), "cookies": {"team": "b", "extra": "1"}}]
    table = fetch_all(items, cookies={"team": "a"}, keep_body=True, **FAST)
    assert json.loads(table[0].body)["cookies"] == {"team": "a"}
    assert json.loads(table[1].body)["cookies"] == {"team": "b", "extra": "1"}


def test_connections_are_reused_within_the_concurrency(server):
    """500 requests at concurrency 20 open at most 20 connections (keep-alive works)."""
    table = fetch_all([server.url("/bytes/64")] * 500, concurrency=20, **FAST)
    assert all(row.ok for row in table) and len(table) == 500
    assert server.requests_served == 500
    assert 1 <= server.connections_accepted <= 20


def test_connections_stay_within_concurrency_across_hosts(server):
    """Two host names of one server are two pools; together they stay within the concurrency."""
    other = server.url("/bytes/64").replace("127.0.0.1", "localhost")
    items = [server.url("/bytes/64"), other] * 150
    table = fetch_all(items, concurrency=10, **FAST)
    assert all(row.ok for row in table)
    assert server.connections_accepted <= 10 + 10


def test_a_full_run_never_discards_pooled_connections(server, caplog):
    """The pool holds as many connections as can be in flight: no 'pool is full' warnings."""
    caplog.set_level("WARNING", logger="urllib3")
    table = fetch_all([server.url("/delay/0.01")] * 300, concurrency=50, **FAST)
    assert all(row.ok for row in table)
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
    assert server.connections_accepted <= 50


def test_explicit_proxy_carries_the_request(server):
    """The loopback server plays the proxy: it receives the absolute-form request."""
    target = refused_url() + "via-proxy"
    row = fetch_all([target], proxies={"http": server.base_url}, **FAST)[0]
    assert row.status == 404  # answered by the proxy, not refused by the target
    assert server.requests_served == 1


def test_environment_proxy_and_no_proxy_are_honoured(server, monkeypatch):
    target = refused_url() + "via-env-proxy"
    monkeypatch.setenv("HTTP_PROXY", server.base_url)
    assert fetch_all([target], **FAST)[0].status == 404
    assert fetch_all([target], proxies={}, **FAST)[0].error == "connect"  # {}: no proxy
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert fetch_all([target], **FAST)[0].error == "connect"


@pytest.mark.parametrize("items, named", [
    ("http://127.0.0.1/a", "str"), (b"http://127.0.0.1/a", "bytes"),
    (bytearray(b"http://x/"), "bytearray"), ({"url": "http://127.0.0.1/a"}, "dict")])
def test_one_url_instead_of_a_list_is_a_type_error(items, named):
    """Issue 13, item 14: fetch_all("http://...") gave one failed row per character."""
    from batchfetch import iter_fetch

    for call in (fetch_all, iter_fetch):
        with pytest.raises(TypeError, match=f"iterable of URLs or request specs, not a single "
                                            f"{named}: pass a list"):
            call(items)


def test_a_non_iterable_is_a_type_error():
    with pytest.raises(TypeError, match="items must be an iterable of URLs or request specs, "
                                        "got int"):
        fetch_all(42)


def test_a_string_body_without_a_content_type_is_sent_as_a_form(server):
    """Issue 13, item 15: as -d does; requests alone would send no Content-Type."""
    items = [{"url": server.url("/echo"), "method": "POST", "data": "a=1"},
             {"url": server.url("/echo"), "method": "POST", "data": b"raw",
              "headers": {"Content-Type": "application/octet-stream"}},
             {"url": server.url("/echo"), "method": "POST", "data": "x",
              "headers": {"Content-Type": None}}]
    table = fetch_all(items, keep_body=True, **FAST)
    form, raw, removed = (json.loads(row.body)["headers"] for row in table)
    assert form["Content-Type"] == "application/x-www-form-urlencoded"
    assert raw["Content-Type"] == "application/octet-stream"
    assert "Content-Type" not in removed
    run_wide = fetch_all([server.url("/echo")], method="PUT", data="b=2", keep_body=True,
                         **FAST)[0]
    assert json.loads(run_wide.body)["headers"]["Content-Type"] == \
        "application/x-www-form-urlencoded"


@pytest.mark.parametrize("data, problem", [
    (True, "'data' must be a string, an object of form fields or a list of pairs, got true"),
    (5, "'data' must be a string, an object of form fields or a list of pairs, got 5"),
    ([1, 2], "'data' must be a string, an object of form fields or a list of pairs, got [1, 2]"),
    ({"a": {"b": 1}}, "'data' field 'a' must be text, a number or a list of them, got dict"),
])
def test_a_spec_data_that_is_no_body_is_an_invalid_request_row(server, data, problem):
    """It went out as a failed attempt with requests' internal message ('protocol'), or a
    nested object as its keys alone."""
    row = fetch_all([{"url": server.url("/echo"), "method": "POST", "data": data}], **FAST)[0]
    assert (row.error, row.attempts, row.message) == ("invalid_request", 0, problem)


def test_form_fields_with_lists_and_numbers_are_sent(server):
    row = fetch_all([{"url": server.url("/echo"), "method": "POST",
                      "data": {"q": "x", "ids": [1, 2]}}], keep_body=True, **FAST)[0]
    assert json.loads(row.body)["body"] == "q=x&ids=1&ids=2"


@pytest.mark.parametrize("location, reason", [
    ("http://[::1/", "Invalid IPv6 URL"), ("http://127.0.0.1:99999/", "Port out of range"),
    ("ftp://127.0.0.1/x", "No connection adapters were found")])
def test_a_redirect_that_cannot_be_followed_says_so(server, location, reason, caplog):
    """A malformed Location was a 'protocol' row with an 'unexpected exception' traceback."""
    from urllib.parse import quote

    row = fetch_all([server.url("/redirect-to?url=" + quote(location))], **FAST)[0]
    assert (row.error, row.status) == ("invalid_url", None)
    assert row.message.startswith(f"cannot follow the redirect to {location!r}: {reason}")
    assert "unexpected exception" not in caplog.text


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_every_offered_coding_is_decoded_and_bounded(server, coding):
    """Issue 17, item 8: servers that only offer brotli or zstd are decoded, bombs too."""
    offered = fetch_all([server.url("/echo")], keep_body=True, **FAST)[0].json()
    assert offered["headers"]["Accept-Encoding"] == "gzip, deflate, br, zstd"
    row = fetch_all([server.url(f"/encoded/{coding}/100000")], keep_body=True, **FAST)[0]
    assert (row.ok, row.size, row.body) == (True, 100000, b"\0" * 100000)
    bomb = fetch_all([server.url(f"/encoded/{coding}/{1 << 40}")], max_bytes=5 << 20,
                     **FAST)[0]
    assert (bomb.status, bomb.error) == (200, "too_large")
    assert 5 * 1024 * 1024 < bomb.size < 6 * 1024 * 1024


def test_response_headers_and_header_columns_on_rows(server):
    """Issue 17, item 3: curl -i and -D as rows have them."""
    url = server.url("/cookies/set?a=1&b=2")
    row = fetch_all([url], response_headers=True, header_columns=["set-cookie", "ETag"],
                    **FAST)[0]
    assert row.headers == {"Set-Cookie": ["a=1; Path=/", "b=2; Path=/"],
                           "Content-Type": "text/plain; charset=utf-8", "Content-Length": "3"}
    record = row.to_record(headers=True, header_columns=["set-cookie", "X-Missing"])
    assert (record["set_cookie"], record["x_missing"]) == ("a=1; Path=/, b=2; Path=/", None)
    picked = fetch_all([url, server.url("/redirect/1")], header_columns=["Content-Length"],
                       **FAST)
    assert [row.headers for row in picked] == [{"Content-Length": "3"}, {"Content-Length": "3"}]
    assert fetch_all([url], **FAST)[0].headers is None  # not asked: not kept
    failed = fetch_all(["http://[::1"], response_headers=True, **FAST)[0]
    assert failed.headers is None


def test_header_columns_that_are_not_headers_or_clash_are_refused():
    for value, problem in ((["Bad Name"], "'Bad Name' is not a header name"),
                           (["Content-Type"], "would be the column 'content_type'"),
                           ([3], "header names")):
        with pytest.raises(OptionError, match=problem):
            FetchOptions(header_columns=value)
    assert FetchOptions(header_columns="X-Id").header_columns == ("X-Id",)
    assert FetchOptions(header_columns=["X-Id", "x-id"]).header_columns == ("X-Id",)
    # Every row has etag and last_modified columns: naming them picks nothing more.
    assert FetchOptions(header_columns=["ETag", "Last-Modified", "X-Id"]).header_columns \
        == ("X-Id",)
