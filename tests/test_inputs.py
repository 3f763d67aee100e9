"""Request specs from URLs, dicts and RequestSpec objects (no sockets)."""
import pytest

from batchfetch import FetchOptions, InvalidItemError, RequestSpec
from batchfetch.inputs import check_url, host_key, to_spec

OPTIONS = FetchOptions(headers={"Accept": "application/json", "X-Run": "1"},
                       params={"page": "1", "lang": "en"}, cookies={"team": "a"})


def test_url_string_takes_the_run_defaults():
    spec = to_spec("  http://127.0.0.1/a  ", OPTIONS)
    assert spec.url == "http://127.0.0.1/a" and spec.method == "GET"
    assert spec.headers == {"Accept": "application/json", "X-Run": "1"}
    assert spec.params == {"page": "1", "lang": "en"} and spec.cookies == {"team": "a"}
    assert spec.json is None and spec.data is None and spec.id is None


def test_item_values_merge_over_the_run_and_win():
    spec = to_spec({"url": "http://127.0.0.1/rpc", "method": "post", "id": {"k": 1},
                    "headers": {"accept": "text/plain"}, "params": {"page": "2"},
                    "cookies": {"team": "b"}, "json": {"x": 1}}, OPTIONS)
    assert spec.method == "POST" and spec.id == {"k": 1} and spec.json == {"x": 1}
    assert spec.headers == {"X-Run": "1", "accept": "text/plain"}
    assert sorted(spec.params) == [("lang", "en"), ("page", "2")]
    assert spec.cookies == {"team": "b"}


def test_item_body_replaces_the_default_body():
    options = FetchOptions(json={"default": 1})
    assert to_spec("http://127.0.0.1/", options).json == {"default": 1}
    replaced = to_spec({"url": "http://127.0.0.1/", "data": "raw"}, options)
    assert replaced.data == "raw" and replaced.json is None


def test_request_spec_objects_are_accepted():
    spec = to_spec(RequestSpec("http://127.0.0.1/x", method="DELETE", id=3), OPTIONS)
    assert (spec.method, spec.id) == ("DELETE", 3)


@pytest.mark.parametrize("item, kind, words", [
    ("not a url", "invalid_url", "no scheme"),
    ("127.0.0.1:8080/x", "invalid_url", "no scheme"),
    ("ftp://x", "invalid_url", "unsupported scheme 'ftp'"),
    ("http://", "invalid_url", "no host"),
    ("http://[::1", "invalid_url", "cannot parse"),
    ("http://exa mple.com", "invalid_url", "invalid character"),
    ("http://h:99999/", "invalid_url", "cannot parse"),
    ({"url": "http://h/", "method": "FROB"}, "invalid_request", "unknown method 'FROB'"),
    ({"url": None}, "invalid_request", "no 'url'"),
    ({"url": "http://h/", "bogus": 1}, "invalid_request", "unknown key(s) bogus"),
    ({"url": "http://h/", "json": 1, "data": "x"}, "invalid_request", "not both"),
    ({"url": "http://h/", "params": 5}, "invalid_request", "'params' must be"),
    (b"http://h/", "invalid_request", "got bytes"),
])
def test_invalid_items_say_why(item, kind, words):
    with pytest.raises(InvalidItemError) as caught:
        to_spec(item, OPTIONS)
    assert caught.value.kind == kind
    assert words in caught.value.message


def test_host_key_normalises_case_and_ports():
    assert host_key("HTTP://Example.COM/x") == ("http", "example.com", 80)
    assert host_key("https://example.com:8443/") == ("https", "example.com", 8443)
    assert host_key("http://[::1]:81/") == ("http", "[::1]", 81)


def test_item_method_for_error_rows():
    from batchfetch.inputs import item_method

    assert item_method({"method": "post"}, "GET") == "POST"
    assert item_method(RequestSpec("http://h/", method="put"), "GET") == "PUT"
    assert item_method("not a url", "patch") == "PATCH"
    assert item_method({"method": 7}, "GET") == "GET"


def test_host_keys_match_host_key_and_stay_bounded():
    from batchfetch.inputs import HostKeys

    keys = HostKeys(limit=3)
    urls = ["HTTP://Example.COM/x?y", "http://example.com:80/z", "https://h/", "http://h:81",
            "http://[::1]:81/a#f", "http://user:pw@h/p"]
    for url in urls:
        assert keys(url) == host_key(url)
        assert len(keys) <= 3


def test_urls_taken_without_parsing_are_urls_urllib3_parses():
    """check_url skips parse_url for plain URLs (urls.is_plain_url, the transport's own test):
    every shape it skips must parse, with a host; the others are parsed as before."""
    from urllib3.util import parse_url

    from batchfetch.urls import is_plain_url

    hosts = ["127.0.0.1", "a", "A.b-c.d", "-", ".", "x" * 300, "1.2.3.4.5", "[::1]"]
    ports = ["", ":0", ":1", ":80", ":65535", ":00080"]
    rests = ["", "/", "/a/b?c=d&e#f", "?q", "#frag", "/%zz%41", "/~!$&'()*+,;=:@[]{}|^`\\\"<>",
             "/a/b?c=d", "/%41"]
    plain = 0
    for host in hosts:
        for port in ports:
            for rest in rests:
                for scheme in ("http", "https"):
                    url = f"{scheme}://{host}{port}{rest}"
                    assert check_url(url) == url
                    if is_plain_url(url):
                        plain += 1
                        assert parse_url(url).host, url
    assert plain > 50
    for odd in ["http://127.0.0.1:65536/", "http://h:123456/", "http://h/a b", "http://é/",
                "ftp://h/", "http:/h", "http://u@h/"]:
        assert not is_plain_url(odd), odd
