"""robots.txt policies (issue 14): what protego makes of a robots.txt, and what fetching one
gives for each answer RFC 9309 2.3.1 names, against the loopback server."""
import doctest
import json
import time
from http import HTTPStatus

import gevent
import pytest
import requests
from click.testing import CliRunner
from head_server import HeadServer, response

from batchfetch import FetchOptions, fetch_all, robots
from batchfetch.cli import main
from batchfetch.errors import ERROR_KINDS, RobotsDisallowedError, classify
from batchfetch.transport.hops import HostEnvironment
from batchfetch.inputs import host_key, to_spec
from batchfetch.robots import (ROBOTS_BYTE_LIMIT, RobotsPolicy, fetch_policy, product_token,
                               robots_url, sent_user_agent)
from batchfetch.transport.session import RequestSettings, build_session
from batchfetch.testing import LoopbackServer, refused_url

UA = "batchfetch/0.1.0"


def policy_of(text, user_agent=UA):
    return RobotsPolicy.parse("http://h/robots.txt", text, user_agent)


def request_kwargs(url, **options):
    """The keywords a run would send ``url`` with: RequestSettings.kwargs."""
    fetch_options = FetchOptions(**options)
    settings = RequestSettings(fetch_options, HostEnvironment(fetch_options.proxies,
                                                              fetch_options.auth))
    return settings.kwargs(to_spec(url, fetch_options), host_key(url))


@pytest.fixture(params=[True, False], ids=["fast_path", "requests_path"])
def session(request):
    """The run's session, as build_session makes it on either request path."""
    with build_session(FetchOptions(fast_path=request.param)) as built:
        yield built


def fetched(session, server, user_agent=UA, **options):
    url = server.url("/")
    return fetch_policy(session, url, request_kwargs(url, **options), user_agent)


# -- reading a robots.txt (no sockets) --------------------------------------------------------

def test_disallow_and_allow_by_prefix():
    policy = policy_of("User-agent: *\nDisallow: /private\n")
    assert not policy.allows("http://h/private")
    assert not policy.allows("http://h/private/a?b=1")
    assert policy.allows("http://h/public") and policy.allows("http://h/")
    assert policy.delay is None and not policy.disallows_all
    assert policy.message == "disallowed by http://h/robots.txt for user agent 'batchfetch/0.1.0'"


def test_wildcards_and_end_anchor():
    policy = policy_of("User-agent: *\nDisallow: /*.pdf$\nDisallow: /*/drafts/\n")
    assert not policy.allows("http://h/docs/a.pdf")
    assert policy.allows("http://h/docs/a.pdf?download=1")  # $ anchors at the URL's end
    assert policy.allows("http://h/docs/a.pdfx")
    assert not policy.allows("http://h/team/drafts/x")
    assert policy.allows("http://h/drafts/x")  # the * needs a segment before /drafts/


def test_the_longest_match_wins_and_allow_wins_a_tie():
    policy = policy_of("User-agent: *\nDisallow: /shop\nAllow: /shop/public\n"
                       "Allow: /page\nDisallow: /page\n")
    assert policy.allows("http://h/shop/public/x")
    assert not policy.allows("http://h/shop/cart")
    assert policy.allows("http://h/page")  # RFC 9309 2.2.2: the least restrictive rule


ROBOTS_GROUPS = ("User-agent: BatchFetch\nDisallow: /for-batchfetch\n\n"
                 "User-agent: otherbot\nDisallow: /\n\n"
                 "User-agent: *\nDisallow: /for-everyone\n")


@pytest.mark.parametrize("user_agent, group", [
    ("batchfetch/0.1.0", "named"),
    ("BATCHFETCH", "named"),  # case-insensitive
    ("Mozilla/5.0 (compatible; batchfetch/1.0)", "*"),  # the product token is Mozilla
    ("curl/8.0", "*"),
    ("", "*"),  # no User-Agent sent
])
def test_the_group_is_chosen_by_the_product_token(user_agent, group):
    policy = policy_of(ROBOTS_GROUPS, user_agent)
    named = (policy.allows("http://h/for-everyone"),
             policy.allows("http://h/for-batchfetch"))
    assert named == ((True, False) if group == "named" else (False, True))


def test_protego_lets_a_group_named_by_a_prefix_of_the_token_apply():
    """Not RFC 9309, which matches the whole token: protego matches a group name found in
    the User-Agent at a word start. Pinned so that a protego change shows up here."""
    policy = policy_of("User-agent: batch\nDisallow: /b\n\nUser-agent: *\nDisallow: /all\n")
    assert (policy.allows("http://h/b"), policy.allows("http://h/all")) == (False, True)


@pytest.mark.parametrize("lines, delay", [
    ("Crawl-delay: 2.5", 2.5),
    ("Request-rate: 1/10s", 10.0),
    ("Request-rate: 3/1m", 20.0),
    ("Crawl-delay: 4\nRequest-rate: 1/10", 10.0),  # the larger of the two
    ("Crawl-delay: 30\nRequest-rate: 1/10s 0600-0845", 30.0),
    ("Crawl-delay: soon", None),  # malformed: ignored
])
def test_delay_is_the_larger_of_crawl_delay_and_request_rate(lines, delay):
    assert policy_of(f"User-agent: *\nDisallow: /x\n{lines}\n").delay == delay


def test_delay_comes_from_the_matching_group():
    text = "User-agent: batchfetch\nCrawl-delay: 1\n\nUser-agent: *\nCrawl-delay: 60\n"
    assert policy_of(text).delay == 1.0
    assert policy_of(text, "otherbot/2").delay == 60.0


def test_for_user_agent_reads_the_same_rules_for_another_agent():
    policy = policy_of(ROBOTS_GROUPS)
    other = policy.for_user_agent("curl/8.0")
    assert policy.allows("http://h/for-everyone") and not other.allows("http://h/for-everyone")
    assert other.message == "disallowed by http://h/robots.txt for user agent 'curl/8.0'"


def test_blanket_policies():
    allowed = RobotsPolicy.allow_all("http://h/robots.txt", UA, "404")
    denied = RobotsPolicy.disallow_all("http://h/robots.txt", UA, "answered 503")
    assert allowed.allows("http://h/x") and allowed.delay is None
    assert not denied.allows("http://h/x") and not denied.allows("http://h/")
    assert denied.message == "answered 503" and denied.disallows_all


@pytest.mark.parametrize("user_agent, token", [
    ("batchfetch/0.1.0", "batchfetch"),
    ("  Foo_Bot-2/1.0", "Foo_Bot-"),
    ("Mozilla/5.0 (compatible; Googlebot/2.1)", "Mozilla"),
    ("", ""),
    ("1bot", ""),
])
def test_product_token(user_agent, token):
    assert product_token(user_agent) == token


def test_the_user_agent_sent_is_the_headers_else_the_default():
    assert sent_user_agent(None, UA) == UA
    assert sent_user_agent({"USER-AGENT": b"Raw/1"}, UA) == "Raw/1"


@pytest.mark.parametrize("options, item_headers", [
    ({}, None),
    ({"user_agent": "Run/1"}, None),
    ({"headers": {"user-agent": "Headers/1"}}, None),
    ({"headers": {"User-Agent": "Headers/1"}}, {"USER-AGENT": "Item/1"}),
    ({}, {"User-Agent": None}),  # requests drops its header, and urllib3 sends its own
])
def test_sent_user_agent_is_what_the_run_sends(server, options, item_headers):
    item = {"url": server.url("/echo"), "headers": item_headers}
    row = fetch_all([item], keep_body=True, retries=0, **options)[0]
    fetch_options = FetchOptions(**options)
    spec = to_spec(item, fetch_options)
    received = {name.lower(): value for name, value in json.loads(row.body)["headers"].items()}
    assert sent_user_agent(spec.headers, fetch_options.user_agent) == received["user-agent"]


@pytest.mark.parametrize("url, expected", [
    ("http://127.0.0.1:8000/a/b?c", "http://127.0.0.1:8000/robots.txt"),
    ("https://user:secret@Example.com:443/x", "https://example.com/robots.txt"),
    ("http://[::1]:80/", "http://[::1]/robots.txt"),
])
def test_robots_url_is_the_origins(url, expected):
    assert robots_url(url) == expected


def test_a_robots_row_has_its_own_kind():
    error = RobotsDisallowedError("http://h/x", "http://h/robots.txt", "disallowed by ...")
    assert classify(error) == ("robots", "disallowed by ...")
    assert "robots" in ERROR_KINDS


def test_docstring_examples_run():
    assert doctest.testmod(robots).failed == 0


# -- fetching it ------------------------------------------------------------------------------

def test_fetched_rules_apply_and_the_request_is_a_plain_get(session, server):
    server.robots_txt = b"User-agent: *\nDisallow: /private\nCrawl-delay: 3\n"
    policy = fetched(session, server)
    assert not policy.allows(server.url("/private/a")) and policy.allows(server.url("/a"))
    assert policy.delay == 3.0
    assert policy.reason == f"the rules of {server.url('/robots.txt')}"
    assert server.hits["/robots.txt"] == 1 and server.requests_served == 1


@pytest.mark.parametrize("status, allowed", [
    (404, True), (401, True), (403, True), (410, True),  # unavailable (2.3.1.3)
    (429, False), (500, False), (503, False),  # unreachable (2.3.1.4)
])
def test_status_decides_when_there_is_no_robots_txt(session, server, status, allowed):
    server.robots_txt = f"/status/{status}"
    policy = fetched(session, server)
    assert policy.allows(server.url("/a")) is allowed
    verdict = "allowed (RFC 9309 2.3.1.3)" if allowed else "disallowed (RFC 9309 2.3.1.4)"
    assert policy.message == (f"{server.url('/robots.txt')} answered {status} "
                              f"{HTTPStatus(status).phrase}: every URL of this origin is "
                              f"{verdict}")


def test_no_robots_txt_at_all_allows_everything(session, server):
    policy = fetched(session, server)  # the server's /robots.txt is a 404 until a test sets it
    assert policy.allows(server.url("/anything")) and not policy.disallows_all


def test_an_unreachable_origin_disallows_everything(session):
    url = refused_url("/a")
    policy = fetch_policy(session, url, request_kwargs(url), UA)
    assert not policy.allows(url) and policy.disallows_all
    assert policy.message.startswith(f"{robots_url(url)} could not be fetched (connect: ")
    assert policy.message.endswith(": every URL of this origin is disallowed (RFC 9309 2.3.1.4)")


def test_a_robots_txt_past_its_deadline_disallows_everything(session, server):
    server.robots_txt = "/fault/trickle?interval=0.2&bytes=50"
    url = server.url("/")
    policy = fetch_policy(session, url, request_kwargs(url), UA, deadline=0.5)
    assert policy.disallows_all and "(deadline: " in policy.message


def test_only_the_first_500_kib_are_parsed(session, server):
    rules = b"User-agent: *\nDisallow: /early\n"
    straddling = b"Allow: /early-but-cut-by-the-limit\n"
    kept = len(b"Allow: /early-but")  # what the limit leaves of the straddling line
    padding = b"#" * (ROBOTS_BYTE_LIMIT - len(rules) - kept - 1) + b"\n"
    body = rules + padding + straddling + b"Disallow: /late\n" + b"#\n" * 50_000
    assert len(rules + padding) + kept == ROBOTS_BYTE_LIMIT
    server.robots_txt = body
    policy = fetched(session, server)
    assert not policy.allows(server.url("/early"))
    assert not policy.allows(server.url("/early-but"))  # not the cut "Allow: /early-but"
    assert policy.allows(server.url("/late"))
    assert policy.reason.endswith(f", its first {ROBOTS_BYTE_LIMIT} bytes")


def test_a_robots_txt_that_never_ends_is_not_read_to_its_end(session, server):
    """It would hang (and pytest-timeout fail the test) if the body were read whole."""
    server.robots_txt = "/robots/endless"
    policy = fetched(session, server)
    assert not policy.allows(server.url("/private")) and policy.allows(server.url("/a"))
    assert policy.reason.endswith(f", its first {ROBOTS_BYTE_LIMIT} bytes")


def test_five_redirects_are_followed(session, server):
    server.robots_txt = "/robots/hops/5"
    policy = fetched(session, server)
    assert not policy.allows(server.url("/private")) and policy.allows(server.url("/a"))
    assert server.hits["/robots/hops/0"] == 1
    assert policy.reason == (f"the rules of {server.url('/robots.txt')} "
                             f"(redirected to {server.url('/robots/hops/0')})")


def test_a_sixth_redirect_means_unavailable_and_allows_everything(session, server):
    server.robots_txt = "/robots/hops/6"
    policy = fetched(session, server)
    assert policy.allows(server.url("/private")) and not policy.disallows_all
    assert server.hits["/robots/hops/1"] == 1 and server.hits["/robots/hops/0"] == 0
    assert policy.message == (f"{server.url('/robots.txt')} redirected more than 5 times: "
                              f"unavailable, every URL of this origin is allowed "
                              f"(RFC 9309 2.3.1.2)")


def test_a_redirect_to_another_host_gives_its_rules_to_this_origin(session, server):
    with LoopbackServer() as other:
        other.robots_txt = b"User-agent: *\nDisallow: /from-other\n"
        server.robots_txt = f"/redirect-to?url={other.url('/robots.txt')}&status=301"
        policy = fetched(session, server)
    assert not policy.allows(server.url("/from-other"))
    assert policy.url == server.url("/robots.txt")


def test_an_unfollowable_redirect_disallows_everything(session, server):
    server.robots_txt = "/redirect-to?url=ftp://127.0.0.1/robots.txt"
    policy = fetched(session, server)
    assert policy.disallows_all and "could not be fetched (invalid_url: " in policy.message


def test_bytes_that_are_not_utf8_do_not_spoil_the_rest(session, server):
    server.robots_txt = (b"User-agent: *\nDisallow: /caf\xe9\nDisallow: /\xff\xfe/x\n"
                         b"Disallow: /private\n")
    policy = fetched(session, server)
    assert not policy.allows(server.url("/private")) and policy.allows(server.url("/public"))


def test_a_byte_order_mark_does_not_hide_the_first_line(session, server):
    """protego reads a BOM as part of the first field: that first line would be lost."""
    server.robots_txt = b"\xef\xbb\xbfUser-agent: *\nDisallow: /private\n"
    assert not fetched(session, server).allows(server.url("/private"))


def test_an_html_page_as_robots_txt_allows_everything(session, server):
    server.robots_txt = "/html"
    policy = fetched(session, server)
    assert policy.allows(server.url("/private")) and not policy.disallows_all


def test_tls_settings_are_the_runs(tls_server, session):
    https_server, ca_path = tls_server
    https_server.robots_txt = b"User-agent: *\nDisallow: /private\n"
    url = https_server.url("/")
    trusted = fetch_policy(session, url, request_kwargs(url, verify=ca_path), UA)
    assert not trusted.allows(https_server.url("/private"))
    assert trusted.allows(https_server.url("/public"))
    untrusted = fetch_policy(session, url, request_kwargs(url), UA)
    assert untrusted.disallows_all and "(tls: " in untrusted.message


def test_the_user_agent_is_sent_and_credentials_and_cookies_are_not():
    with HeadServer(lambda line, headers: response(body=b"User-agent: *\nDisallow: /x\n")) \
            as head:
        url = head.url("/page")
        options = {"auth": ("ann", "secret"), "cookies": {"sid": "1"},
                   "headers": {"X-Token": "t"}}
        with build_session(FetchOptions(**options)) as run_session:
            fetch_policy(run_session, url, request_kwargs(url, **options), "MyBot/2")
            fetch_policy(run_session, url, request_kwargs(url, **options), "")
    (line, headers), (_, anonymous) = head.requests
    assert line == "GET /robots.txt HTTP/1.1"
    assert headers["user-agent"] == "MyBot/2" and "user-agent" not in anonymous
    assert not {"authorization", "cookie", "x-token"} & set(headers)


def test_its_cookies_stay_out_of_the_sessions_jar(server):
    """A plain requests.Session would keep them and send them with every later request."""
    server.robots_txt = "/cookies/set?sid=from-robots"
    with requests.Session() as plain:
        policy = fetch_policy(plain, server.url("/"), {"timeout": 5}, UA)
        assert policy.allows(server.url("/a")) and len(plain.cookies) == 0


def test_origins_are_fetched_concurrently_from_greenlets(session):
    servers = [LoopbackServer().start() for _ in range(3)]
    try:
        for number, each in enumerate(servers):
            each.robots_txt = f"User-agent: *\nDisallow: /only-{number}\n".encode()
        jobs = [gevent.spawn(fetched, session, each) for each in servers]
        gevent.joinall(jobs, raise_error=True)
        for number, (each, job) in enumerate(zip(servers, jobs)):
            assert not job.value.allows(each.url(f"/only-{number}"))
            assert job.value.allows(each.url(f"/only-{(number + 1) % 3}"))
    finally:
        for each in servers:
            each.stop()


# -- robots=True in a run: fetched once per origin, before the first request ---------------


def test_a_run_with_robots_skips_disallowed_urls_with_robots_rows(server):
    server.robots_txt = b"User-agent: *\nDisallow: /status/\nAllow: /status/204\n"
    urls = [server.url("/ok"), server.url("/status/200"), server.url("/status/204"),
            server.url("/ok?again=1")]
    handled = []
    table = fetch_all(urls, robots=True, exception_handler=lambda item, exc: handled.append(exc))
    assert [row.error for row in table] == ["", "robots", "", ""]
    assert "disallowed by" in table[1].message and "robots.txt" in table[1].message
    assert (table[1].status, table[1].attempts) == (None, 0)
    assert server.hits["/robots.txt"] == 1
    assert server.hits["/status/200"] == 0
    assert isinstance(handled[0], RobotsDisallowedError)


def test_a_run_without_robots_never_asks_for_robots_txt(server):
    server.robots_txt = b"User-agent: *\nDisallow: /\n"
    assert fetch_all([server.url("/ok")])[0].ok
    assert server.hits["/robots.txt"] == 0


def test_a_robots_txt_answering_503_disallows_the_whole_origin_in_a_run(server):
    server.robots_txt = "/status/503"
    table = fetch_all([server.url("/ok"), server.url("/ok?b=1")], robots=True)
    assert {row.error for row in table} == {"robots"}
    assert "503" in table[0].message
    assert server.hits["/ok"] == 0


def test_crawl_delay_spaces_the_hosts_starts(server):
    """Three requests with Crawl-delay: 0.2 take at least 0.4 s (a lower bound only)."""
    server.robots_txt = b"User-agent: *\nCrawl-delay: 0.2\n"
    started = time.monotonic()
    table = fetch_all([server.url(f"/ok?n={n}") for n in range(3)], robots=True, concurrency=3)
    assert time.monotonic() - started >= 0.4
    assert all(row.ok for row in table)


def test_the_cli_takes_robots(server, tmp_path):
    server.robots_txt = b"User-agent: *\nDisallow: /status/\n"
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{server.url('/ok')}\n{server.url('/status/200')}\n")
    result = CliRunner().invoke(main, [str(urls), "--robots", "-f", "jsonl", "-q"])
    rows = sorted((json.loads(line) for line in result.stdout.splitlines()),
                  key=lambda row: row["index"])
    assert [row["error"] for row in rows] == ["", "robots"]
    assert result.exit_code == 1


def test_crawl_delay_is_a_wait_reason_and_one_past_max_retry_wait_skips_the_origin(server):
    server.robots_txt = b"User-agent: *\nCrawl-delay: 0.1\n"
    table = fetch_all([server.url(f"/ok?n={n}") for n in range(3)], robots=True, concurrency=3)
    assert "crawl-delay" in {row.wait_reason for row in table}
    with LoopbackServer() as slow:
        slow.robots_txt = b"User-agent: *\nCrawl-delay: 3600\n"
        table = fetch_all([slow.url("/ok")], robots=True)
        assert (table[0].error, slow.hits["/ok"]) == ("robots", 0)
        assert "3600 s between requests, more than max_retry_wait=60 s" in table[0].message


def test_a_robots_txt_reset_once_is_fetched_again():
    """A reset is what a request would retry: robots.txt gets the run's retries too,
    instead of disallowing the origin for the whole run."""
    def answer(line, headers):
        path = line.split(" ")[1]
        if path == "/robots.txt" and not any(
                seen.split(" ")[1] == path for seen, _ in server.requests[:-1]):
            return b""  # the first robots.txt: closed with no answer at all, a reset
        body = b"User-agent: *\nDisallow: /private\n" if path == "/robots.txt" else b"ok"
        return response(body=body)

    with HeadServer(answer) as server:
        table = fetch_all([server.url("/a"), server.url("/private/b")], robots=True,
                          backoff=0.01)
        robots_fetches = [line for line, _ in server.requests if " /robots.txt " in line]
    assert [row.error for row in table] == ["", "robots"]
    assert len(robots_fetches) == 2
