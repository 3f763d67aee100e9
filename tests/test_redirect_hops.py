"""What each hop of a redirect chain carries (issue 13, items 6 and 7): the user's cookies
only to the host they were given for, and over https only when given for https; the
environment's proxy and netrc credentials for the hop's own host."""
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner
from head_server import HeadServer, response

from batchfetch import fetch_all
from batchfetch.cli import main

pytestmark = pytest.mark.usefixtures("both_paths")

QUICK = {"retries": 0}


def redirect_or_ok(line, headers):
    """``/go?to=URL[&set=NAME=VALUE]`` redirects (302, setting a cookie if asked); anything
    else is 200 ``ok``."""
    target = urlsplit(line.split()[1])
    query = parse_qs(target.query)
    if not target.path.endswith("/go"):
        return response(body=b"ok")
    cookies = [("Set-Cookie", f"{value}; Path=/") for value in query.get("set", [])]
    return response("302 Found", headers=[("Location", query["to"][0]), *cookies])


class HopServer(HeadServer):
    """Records each hop's request; reachable as ``127.0.0.1`` and as ``localhost``: two
    host names."""

    def __init__(self):
        super().__init__(redirect_or_ok)

    def cookie_of(self, path_end):
        """The Cookie header of the request for the path ending with ``path_end``."""
        return next(headers.get("cookie") for line, headers in self.requests
                    if line.split()[1].split("?")[0].endswith(path_end))


@pytest.fixture
def hops():
    with HopServer() as running:
        yield running


def go(to, **query):
    from urllib.parse import urlencode

    return "/go?" + urlencode({"to": to, **query})


def test_given_cookies_stay_on_their_host_across_redirects(hops):
    """requests (and curl -b) send them to whatever host a redirect names."""
    other_host = hops.url("/elsewhere", host="localhost")
    same_host_other_port = f"http://127.0.0.1:{hops.port}/sameport"
    items = [{"url": hops.url(go(other_host)), "id": "cross"},
             {"url": hops.url(go(same_host_other_port)), "id": "same"}]
    table = fetch_all(items, cookies={"sid": "secret"}, **QUICK)
    assert [row.error for row in table] == ["", ""]
    assert hops.cookie_of("/elsewhere") is None  # another host: not sent
    assert hops.cookie_of("/sameport") == "sid=secret"  # the same host: sent


def test_cookies_set_within_a_chain_still_follow_it(hops):
    """The chain's own cookies go where a browser would send them, beside the user's."""
    end = hops.url("/end")
    row = fetch_all([hops.url(go(end, set="chain=1"))], cookies={"sid": "s"}, **QUICK)[0]
    assert row.ok
    assert sorted(hops.cookie_of("/end").split("; ")) == ["chain=1", "sid=s"]


def test_cookies_given_for_https_never_go_to_http(hops, tls_server):
    server, ca_path = tls_server
    downgrade = server.url("/redirect-to?url=" + hops.url("/plain"))
    upgrade = hops.url(go(server.url("/cookies")))
    table = fetch_all([downgrade, {"url": upgrade, "cookies": {"up": "1"}}],
                      cookies={"sid": "secret"}, verify=ca_path, keep_body=True, **QUICK)
    assert [row.error for row in table] == ["", ""]
    assert hops.cookie_of("/plain") is None  # https -> http, same host: not in clear text
    assert b'"sid": "secret"' in table[1].body  # http -> https, same host: sent


def test_cli_cookies_are_bound_the_same_way(hops):
    result = CliRunner().invoke(main, ["-q", "-r", "0", "-b", "sid=secret"],
                                input=hops.url(go(hops.url("/away", host="localhost"))))
    assert result.exit_code == 0, result.output
    assert hops.cookie_of("/away") is None


class TestEnvironmentPerHop:
    """Each hop resolves HTTP_PROXY/NO_PROXY and netrc for its own host, as requests does
    with trust_env (batchfetch resolves the environment itself, once per host)."""

    def test_a_redirect_from_a_no_proxy_host_goes_through_the_proxy(self, hops, monkeypatch):
        with HopServer() as proxy:
            monkeypatch.setenv("http_proxy", proxy.url(""))
            monkeypatch.setenv("no_proxy", "127.0.0.1")
            row = fetch_all([hops.url(go(hops.url("/far", host="localhost")))], **QUICK)[0]
        assert row.ok
        assert len(hops.requests) == 1  # the first hop, direct: 127.0.0.1 is in no_proxy
        assert [line.split()[1] for line, _ in proxy.requests] == [hops.url("/far", "localhost")]

    def test_a_redirect_to_a_no_proxy_host_goes_direct(self, hops, monkeypatch):
        with HopServer() as proxy:
            monkeypatch.setenv("http_proxy", proxy.url(""))
            monkeypatch.setenv("no_proxy", "127.0.0.1")
            near = hops.url("/near")
            row = fetch_all([f"http://localhost:{hops.port}" + go(near)],
                            **QUICK)[0]
        assert row.ok
        assert len(proxy.requests) == 1  # the first hop, to localhost
        assert [line.split()[1] for line, _ in hops.requests] == ["/near"]

    def test_each_hop_gets_its_own_hosts_netrc_credentials(self, hops, monkeypatch, tmp_path):
        netrc = tmp_path / "netrc"
        netrc.write_text("machine localhost login ann password pw\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("NETRC", str(netrc))
        row = fetch_all([hops.url(go(hops.url("/auth", host="localhost")))], **QUICK)[0]
        assert row.ok
        first, second = (headers for _, headers in hops.requests)
        assert "authorization" not in first  # no netrc entry for 127.0.0.1
        assert second["authorization"] == "Basic YW5uOnB3"  # ann:pw, for localhost
        explicit = fetch_all([hops.url(go(hops.url("/auth2", host="localhost")))],
                             auth=("bob", "x"), **QUICK)[0]
        assert explicit.ok and "authorization" not in hops.requests[-1][1]

    def test_netrc_credentials_are_not_sent_over_http_after_https(self, hops, tls_server,
                                                                   monkeypatch, tmp_path):
        """requests drops Authorization on https -> http, then trust_env puts netrc's back,
        in clear text."""
        server, ca_path = tls_server
        netrc = tmp_path / "netrc"
        netrc.write_text("machine 127.0.0.1 login ann password pw\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("NETRC", str(netrc))
        row = fetch_all([server.url("/redirect-to?url=" + hops.url("/downgraded"))],
                        verify=ca_path, **QUICK)[0]
        assert row.ok
        assert [headers.get("authorization") for _, headers in hops.requests] == [None]
