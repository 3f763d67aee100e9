"""The fast path's URL check: every URL it takes is one requests would send exactly as written.

``is_plain_url`` runs on every request, so it is a regular expression rather than requests'
own preparation; these tests hold it to ``PreparedRequest.prepare_url`` (issue 13, item 8):
whatever it accepts, prepare_url returns unchanged, and the request target the fast path
cuts from it is requests' ``path_url``.
"""
import ipaddress
import string

import pytest
import requests
from hypothesis import event, given, settings
from hypothesis import strategies as st

from batchfetch.urls import is_plain_url

UNRESERVED = set(string.ascii_letters + string.digits + "-._~")


def prepared(url: str) -> requests.PreparedRequest:
    request = requests.PreparedRequest()
    request.prepare_url(url, None)
    return request


def target(url: str) -> str:
    """The request target the fast path sends: everything from the path on."""
    return url[url.index("/", url.index("//") + 2):]


def assert_sent_as_written(url: str) -> None:
    request = prepared(url)
    assert request.url == url
    assert request.path_url == target(url)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/bytes/1024?page=3",
    "https://example.com/",
    "http://a.b-c.example:65535/x/y/z?q=1&r=2/3?4",
    "http://h/.well-known/x/..a/b./c..?d=../e/./f",
    "http://h//a///b",
    "http://h/a;p=1/b@c:d?e=f+g!$&'()*,;=:@",
    "http://h/a%2Fb%3A%C3%A9%25%00?q=%3D%26%2F%7F",
    "http://h:80/", "https://h:443/", "http://h:1/",
    "http://[::1]:8080/x", "http://[::ffff:127.0.0.1]/", "http://[2001:db8::a:b]/",
])
def test_ordinary_urls_take_the_fast_path(url):
    assert is_plain_url(url)
    assert_sent_as_written(url)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/../../anything/r",  # the examples
    "http://h/a/../b/./c",
    "http://h/%2e%2e/x", "http://h/%7euser", "http://h/a%2fb", "http://h/%41",
    "http://h:08001/x", "http://h:0/x", "http://h:/x", "http://h:65536/x", "http://h:99999/x",
    "http://h/x?", "http://h/x?#", "http://h/x#f", "http://h/x?a#f",
    "http://h/a/..", "http://h/a/.", "http://h/.", "http://h/..?q", "http://h//./x",
    "http://h/a[1]", "http://h/a|b", "http://h/a^b", "http://h/a`b", "http://h/{a}",
    'http://h/a"b', "http://h/a<b>", "http://h/a\\b", "http://h/a b", "http://h/a\tb",
    "http://h/café", "http://h/a%", "http://h/a%2", "http://h/a%zz", "http://h/?q=a b",
    "HTTP://h/", "http://H/", "http://Example.com/", "http://h", "http://h?q",
    "http://u:p@h/", "http://@h/", "http://.h/", "http://*.h/", "ftp://h/",
    "http://[1.2.3.4]/", "http://[::g]/", "http://[:::]/", "http://[::1%25eth0]/",
    "http://[::FFFF:7F00:1]/", " http://h/",
    # a final dot: urllib3 keeps it for the lookup but drops it from Host and the TLS name
    "http://example.com./x", "https://h.:8443/",
])
def test_urls_requests_would_change_take_requests_path(url):
    assert not is_plain_url(url)


@pytest.mark.parametrize("where", ["path", "query"])
def test_each_ascii_character_is_taken_only_where_requests_keeps_it(where):
    taken = set()
    for code in range(0x00, 0x80):
        url = f"http://h/a{chr(code)}b" if where == "path" else f"http://h/p?a{chr(code)}b"
        if is_plain_url(url):
            assert_sent_as_written(url)
            taken.add(chr(code))
    # what RFC 3986 allows in a path segment or query, less '%' alone; '/' and '?' delimit
    assert taken == UNRESERVED | set("!$&'()*+,;=:@") | set("/?")


@pytest.mark.parametrize("where", ["path", "query"])
def test_a_percent_escape_is_taken_only_upper_case_and_of_a_reserved_byte(where):
    for code in range(256):
        for escape in {f"%{code:02X}", f"%{code:02x}"}:
            url = f"http://h/a{escape}b" if where == "path" else f"http://h/p?a{escape}b"
            expected = escape == escape.upper() and chr(code) not in UNRESERVED
            assert is_plain_url(url) == expected, escape
            if expected:
                assert_sent_as_written(url)


# -- generated URLs, biased towards what prepare_url changes ---------------------------------

HEX = "0123456789abcdefABCDEF"
ESCAPES = st.builds(lambda high, low: f"%{high}{low}", st.sampled_from(HEX), st.sampled_from(HEX))
SAFE_ATOMS = st.sampled_from(list("aZ09-._~!$&'()*+,;=:@") + [
    "seg", "%2F", "%3F", "%23", "%C3%A9", "%25", "%00", ".well", "..x", "x.."])
TRICKY_ATOMS = st.one_of(
    st.sampled_from(list("[]|^`{}\"<>\\ \t#?/%") + ["é", "中", "\x00"]),
    ESCAPES,
    st.sampled_from([".", "..", "%2e", "%2E", "%2e%2E", "%7e", "%7E", "%41", "%", "%2", "%zz"]),
)
ATOMS = st.one_of(SAFE_ATOMS, TRICKY_ATOMS)
# mostly what the fast path takes, so the property is exercised on many accepted URLs
MOSTLY_SAFE_ATOMS = st.integers(0, 11).flatmap(lambda n: TRICKY_ATOMS if n == 0 else SAFE_ATOMS)
SEGMENT = st.lists(ATOMS, max_size=4).map("".join)
DOT_SEGMENT = st.sampled_from([".", "..", "", "%2e", "%2E%2E"])
PATH = st.one_of(
    st.just(""),
    st.lists(st.one_of(SEGMENT, DOT_SEGMENT), min_size=1, max_size=5).map(
        lambda segments: "/" + "/".join(segments)),
)
REG_NAME = st.lists(st.sampled_from(["a", "b", "Z", "0", "9", "-", ".", "_", "*", "%41",
                                     "example", "x.y", "127", "é"]), max_size=5).map("".join)
IPV4 = st.one_of(
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda parts: ".".join(map(str, parts))),
    st.sampled_from(["127.000.000.001", "0x7f.1", "0X7F.1", "999.1.1.1", "1.2.3", "1.2.3.4.5"]),
)


def _ipv6_text(number: int, form: str) -> str:
    address = ipaddress.IPv6Address(number)
    text = {"compressed": address.compressed, "exploded": address.exploded,
            "mapped": f"::ffff:{ipaddress.IPv4Address(number & 0xFFFFFFFF)}"}[form]
    return text


IPV6 = st.one_of(
    st.builds(_ipv6_text,
              st.one_of(st.integers(0, 2 ** 128 - 1), st.sampled_from([0, 1, 2 ** 32, 2 ** 112])),
              st.sampled_from(["compressed", "exploded", "mapped"]))
    .flatmap(lambda text: st.sampled_from([text, text.upper()])),
    st.sampled_from(["1.2.3.4", "::g", ":::", "::1%25eth0", "::1%eth0", "1::2::3", "::1.2.3",
                     "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7", "0::0.0.0.0"]),
).map(lambda text: f"[{text}]")
HOST = st.one_of(REG_NAME, IPV4, IPV6, st.sampled_from(["[::1", "::1]", "h:1:2"]))
PORT = st.one_of(
    st.none(),
    st.just(""),
    st.integers(0, 70000).map(str),
    st.integers(0, 70000).map(lambda port: f"0{port}"),
    st.sampled_from(["80", "443", "8080", "65535", "65536", "00", "+1", "1a"]),
)
URLS = st.builds(
    lambda scheme, userinfo, host, port, path, query, fragment: (
        f"{scheme}://{'' if userinfo is None else userinfo + '@'}{host}"
        f"{'' if port is None else ':' + port}{path}"
        f"{'' if query is None else '?' + query}{'' if fragment is None else '#' + fragment}"),
    st.sampled_from(["http", "https", "HTTP", "Https", "ftp"]),
    st.one_of(st.none(), st.sampled_from(["user", "u:p", ""])),
    HOST,
    PORT,
    PATH,
    st.one_of(st.none(), st.lists(ATOMS, max_size=5).map("".join)),
    st.one_of(st.none(), st.lists(ATOMS, max_size=2).map("".join)),
)


def check_taken_url(url: str) -> None:
    taken = is_plain_url(url)
    # how many were taken: pytest --hypothesis-show-statistics
    event("taken by the fast path" if taken else "left to requests")
    if taken:
        assert_sent_as_written(url)


@settings(max_examples=1000, deadline=None, database=None)
@given(URLS)
def test_every_url_taken_is_one_prepare_url_keeps(url):
    check_taken_url(url)


MOSTLY_PLAIN_URLS = st.builds(
    lambda scheme, host, port, path, query: f"{scheme}://{host}{port}{path}{query}",
    st.sampled_from(["http", "https"]),
    st.one_of(st.just("127.0.0.1"), REG_NAME.map(str.lower), IPV6.map(str.lower)),
    st.sampled_from(["", ":8080", ":1", ":80", ":65535", ":08080"]),
    st.lists(st.lists(MOSTLY_SAFE_ATOMS, max_size=6).map("".join), min_size=1, max_size=5).map(
        lambda segments: "/" + "/".join(segments)),
    st.one_of(st.just(""), st.lists(MOSTLY_SAFE_ATOMS, max_size=8).map(
        lambda atoms: "?" + "".join(atoms))),
)


@settings(max_examples=1000, deadline=None, database=None)
@given(MOSTLY_PLAIN_URLS)
def test_every_plausible_url_taken_is_one_prepare_url_keeps(url):
    """The same property where most URLs are close to plain, so many are taken."""
    check_taken_url(url)
