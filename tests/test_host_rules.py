"""Per-host settings (issue 14): ``--hosts hosts.toml`` / ``hosts=``, patterns and precedence,
secrets from the environment, errors naming the file, the pattern and the key, and the request
side on both paths: headers, auth, timeouts and proxy for matching hosts only, never carried
by a redirect to another host."""
import json
import pickle
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from head_server import HeadServer

from batchfetch import FetchOptions, HostRules, HostRulesError, OptionError, fetch_all
from batchfetch.cli import main
from batchfetch.transport.hops import HostEnvironment
from batchfetch.host_rules import HostRule, MatchedPatterns
from batchfetch.inputs import to_spec
from batchfetch.transport.session import RequestSettings
from batchfetch.testing import LoopbackServer

QUICK = {"retries": 0}


def toml_file(tmp_path, text, name="hosts.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(document, **kwargs):
    with pytest.raises(HostRulesError) as caught:
        HostRules.from_mapping(document, **kwargs)
    return caught.value


# -- patterns and precedence ---------------------------------------------------------------

PRECEDENCE = HostRules.from_mapping({
    "*": {}, "*.example.com": {}, "*.api.example.com": {}, "api.example.com": {},
    "api.example.com:8443": {}, "*.example.com:8443": {}})


@pytest.mark.parametrize("host, port, pattern", [
    ("api.example.com", 8443, "api.example.com:8443"),   # the name, then its port
    ("api.example.com", 443, "api.example.com"),
    ("API.Example.COM", None, "api.example.com"),        # names are case-insensitive
    ("v1.api.example.com", 443, "*.api.example.com"),   # the longest wildcard
    ("v1.api.example.com", 8443, "*.api.example.com"),  # a longer name before a port
    ("a.b.www.example.com", 8443, "*.example.com:8443"),
    ("www.example.com", 80, "*.example.com"),
    ("example.com", 443, "*"),                          # *.example.com: subdomains only
    ("other.test", 80, "*"),
])
def test_the_most_specific_pattern_decides(host, port, pattern):
    assert PRECEDENCE.for_host(host, port).pattern == pattern


def test_no_pattern_no_rule_and_lookups_by_key_and_url():
    rules = HostRules.from_mapping({"*.example.com": {"rate": 2}, "127.0.0.1:8000": {}})
    assert rules.for_host("example.org") is None and rules.for_host("example.com") is None
    assert rules.for_key(("https", "a.example.com", 443)).rate == 2.0
    assert rules.for_url("http://127.0.0.1:8000/x").pattern == "127.0.0.1:8000"
    assert rules.for_url("http://127.0.0.1:8001/x") is None
    assert rules.for_url("not a url") is None


def test_international_names_match_as_written_or_in_punycode():
    rules = HostRules.from_mapping({"Bücher.example": {"retries": 1},
                                    "*.xn--caf-dma.example": {"retries": 2}})
    assert rules.for_key(("http", "xn--bcher-kva.example", 80)).retries == 1
    assert rules.for_host("BÜCHER.example").retries == 1
    assert rules.for_url("http://menu.café.example/").retries == 2


def test_ipv6_literal_with_a_port():
    rules = HostRules.from_mapping({"[::1]:8080": {"retries": 0}})
    assert rules.for_url("http://[::1]:8080/x").retries == 0
    assert rules.for_url("http://[::1]:8081/x") is None


@pytest.mark.parametrize("pattern", [
    "http://api.example.com", "api.example.com/v1", "a b", "*.", "*.*.example", "api.*.com",
    "host:0", "host:99999", "host:", "*:http", "", "ann@api.example.com", "api.example.com?x",
])
def test_what_is_not_a_pattern(pattern):
    error = error_of({pattern: {"rate": 1}})
    assert (error.pattern, error.key) == (pattern, None)
    assert f'["{pattern}"]: not a host pattern: expected a host name' in str(error)


def test_two_spellings_of_one_pattern_are_refused():
    error = error_of({"API.example.com": {}, "api.example.com": {}}, source="hosts.toml")
    assert str(error) == ('hosts.toml: ["api.example.com"]: the same pattern as '
                          '["API.example.com"]')


def test_unused_names_the_patterns_no_url_matched():
    rules = HostRules.from_mapping({"a.test": {}, "*.a.test": {}, "b.test": {}, "*": {}})
    assert rules.unused(["http://a.test/", "http://x.a.test:81/", "bad url"]) == ["b.test",
                                                                                   "*"]
    matched = MatchedPatterns(rules)
    for url in ("http://b.test/", "http://c.test/"):
        matched.add(url)
    assert matched.note() == 'hosts: no host fetched matched ["a.test"], ["*.a.test"]'


# -- values ----------------------------------------------------------------------------------

FULL = """\
["api.example.com"]
concurrency = 4
rate = 10
retries = 5
timeout = [3, 20]
connect_timeout = 2
headers = { Accept = "application/json", X-Api-Key = { env = "TEST_API_KEY" } }
auth = { bearer = { env = "TEST_API_TOKEN" } }

["*.cdn.example"]
timeout = 7.5
proxy = "http://ann:proxy-pw@127.0.0.1:3128"

["intranet.example"]
auth = { user = "ann", password = { env = "TEST_PASSWORD" } }
proxy = false
"""


@pytest.fixture
def secrets(monkeypatch):
    for name, value in (("TEST_API_KEY", "key-s3cret"), ("TEST_API_TOKEN", "token-s3cret"),
                        ("TEST_PASSWORD", "pw-s3cret")):
        monkeypatch.setenv(name, value)


def test_a_full_file_reads_into_rules(tmp_path, secrets):
    rules = HostRules.load(toml_file(tmp_path, FULL))
    api, cdn, intranet = rules.rules
    assert (api.concurrency, api.rate, api.retries) == (4, 10.0, 5)
    assert (api.timeout, api.connect_timeout) == ((3.0, 20.0), 2.0)
    assert api.request_headers == {"Accept": "application/json", "X-Api-Key": "key-s3cret",
                                   "Authorization": "Bearer token-s3cret"}
    assert (cdn.concurrency, cdn.timeout, cdn.proxies) == (
        None, (7.5, 7.5), {"http": "http://ann:proxy-pw@127.0.0.1:3128",
                           "https": "http://ann:proxy-pw@127.0.0.1:3128"})
    assert intranet.auth == ("ann", "pw-s3cret") and intranet.proxies == {}
    assert intranet.request_headers == {"Authorization": "Basic YW5uOnB3LXMzY3JldA=="}
    assert rules.source == str(tmp_path / "hosts.toml")


def test_timeouts_replace_the_runs_for_their_hosts():
    run = (10.0, 30.0)
    assert HostRule("h").timeout_over(run) == run
    assert HostRule("h", timeout=(3.0, 20.0)).timeout_over(run) == (3.0, 20.0)
    assert HostRule("h", connect_timeout=1.0).timeout_over(run) == (1.0, 30.0)
    assert HostRule("h", timeout=(5.0, 5.0), connect_timeout=1.0).timeout_over(run) == (1.0,
                                                                                         5.0)


def test_a_missing_environment_variable_is_named(monkeypatch):
    monkeypatch.delenv("TEST_NO_SUCH_TOKEN", raising=False)
    error = error_of({"api.example.com": {"auth": {"bearer": {"env": "TEST_NO_SUCH_TOKEN"}}}})
    assert str(error) == ('hosts: ["api.example.com"] auth.bearer: the environment variable '
                          'TEST_NO_SUCH_TOKEN is not set')
    assert (error.source, error.pattern, error.key) == ("hosts", "api.example.com",
                                                        "auth.bearer")


def test_environment_can_be_given():
    rules = HostRules.from_mapping({"h.test": {"headers": {"X-Key": {"env": "K"}}}},
                                   environ={"K": "v"})
    assert rules.for_host("h.test").headers == {"X-Key": "v"}


@pytest.mark.parametrize("key, toml, message", [
    ("concurrency", "0", "concurrency: expected an integer >= 1, got 0"),
    ("concurrency", "2.5", "concurrency: expected an integer >= 1, got 2.5"),
    ("concurrency", "true", "concurrency: expected an integer >= 1, got true"),
    ("rate", '"fast"', 'rate: expected a number > 0, got "fast"'),
    ("rate", "0", "rate: expected a number > 0, got 0"),
    ("rate", "nan", "rate: expected a number > 0, got nan"),
    ("retries", "-1", "retries: expected an integer >= 0, got -1"),
    ("timeout", "[1, 2, 3]", "timeout: expected a number > 0 or [connect, read], got [1, 2, 3]"),
    ("timeout", "[1, 0]", "timeout: expected a number > 0 or [connect, read], got [1, 0]"),
    ("timeout", '"10s"', 'timeout: expected a number > 0 or [connect, read], got "10s"'),
    ("connect_timeout", "-2", "connect_timeout: expected a number > 0, got -2"),
    ("headers", '"Accept: x"', "headers: expected a table of header names and values, got a "
                               "string"),
    ("headers", "{ X-Id = 7 }", 'headers.X-Id: expected a string or {env = "NAME"}, got an '
                                "integer"),
    ("headers", '{ "X:Y" = "v" }', "headers.\"X:Y\": header name 'X:Y' is not valid"),
    ("headers", '{ Accept = "a", accept = "b" }', "headers.accept: the same header as 'Accept'"),
    ("auth", '["ann", "pw"]', 'auth: expected {user = "...", password = "..."} or {bearer = '
                              '"..."} (each may be {env = "NAME"}), got an array of 2'),
    ("auth", '{ user = "ann" }', 'auth: expected {user = "...", password = "..."} or {bearer = '
                                 '"..."} (each may be {env = "NAME"}), got a table with the keys '
                                 "user"),
    ("auth", '{ bearer = " " }', "auth.bearer: the token is empty"),
    ("auth", '{ bearer = { env = 5 } }', "auth.bearer: env must name an environment variable, "
                                         "got 5"),
    ("auth", '{ user = "a:b", password = "x" }', "auth.user: basic auth cannot send a user name "
                                                 "with ':'"),
    ("proxy", '"ftp://h"', "proxy: 'ftp://h' needs a host and one of the schemes http, https"),
    ("proxy", "true", 'proxy: expected a proxy URL, false or {env = "NAME"}, got a boolean'),
])
def test_a_bad_value_names_the_file_the_pattern_and_the_key(tmp_path, key, toml, message):
    path = toml_file(tmp_path, f'["api.example.com"]\n{key} = {toml}\n')
    with pytest.raises(HostRulesError) as caught:
        HostRules.load(path)
    error = caught.value
    assert isinstance(error, OptionError) and isinstance(error, ValueError)
    assert str(error).startswith(f'{path}: ["api.example.com"] {message}'), str(error)
    assert error.option == "hosts" and error.pattern == "api.example.com"
    assert error.key.split(".")[0] == key


def test_an_unknown_key_lists_the_keys_and_a_dotted_bare_pattern_is_explained(tmp_path):
    path = toml_file(tmp_path, '["api.example.com"]\nratelimit = 5\n')
    with pytest.raises(HostRulesError) as caught:
        HostRules.load(path)
    assert str(caught.value) == (f'{path}: ["api.example.com"] ratelimit: unknown key; the keys '
                                 "are concurrency, rate, retries, timeout, connect_timeout, "
                                 "headers, auth, proxy")
    bare = toml_file(tmp_path, "[api.example.com]\nrate = 5\n")
    with pytest.raises(HostRulesError) as caught:
        HostRules.load(bare)
    assert str(caught.value).startswith(f'{bare}: ["api"] example: unknown key')
    assert str(caught.value).endswith('(a host name with dots goes in quotes: '
                                      '["api.example.com"])')


def test_a_setting_outside_a_pattern_and_auth_given_twice(tmp_path):
    path = toml_file(tmp_path, 'rate = 5\n')
    with pytest.raises(HostRulesError, match=r'hosts.toml: rate: expected a table of settings '
                                             r'under a quoted host pattern'):
        HostRules.load(path)
    twice = {"h.test": {"headers": {"authorization": "x"}, "auth": {"bearer": "t"}}}
    assert str(error_of(twice)) == ('hosts: ["h.test"] auth: the headers set Authorization '
                                    'too: give one of them')


def test_a_toml_syntax_error_names_the_file_and_the_parsers_message(tmp_path):
    path = toml_file(tmp_path, '["api.example.com"]\nrate = \n')
    with pytest.raises(HostRulesError) as caught:
        HostRules.load(path)
    assert str(caught.value).startswith(f"{path}: not valid TOML: Invalid value (at line 2")
    unreadable = tmp_path / "missing.toml"
    with pytest.raises(HostRulesError, match="missing.toml: cannot read it: No such file"):
        HostRules.load(unreadable)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b'["h"]\nrate = "\xff"\n')
    with pytest.raises(HostRulesError, match="binary.toml: not UTF-8 text"):
        HostRules.load(binary)


@pytest.mark.parametrize("table", [
    {"auth": {"user": "ann", "password": "s3cret\u20ac"}},
    {"auth": {"bearer": "s3cret\nX-Injected: 1"}},
    {"headers": {"X-Token": "s3cret\r\n"}},
    {"proxy": "http://ann:s3cret@[::1"},
])
def test_error_messages_never_show_a_secret(table):
    error = error_of({"api.example.com": table})
    assert "s3cret" not in str(error) and "s3cret" not in repr(error.args)


def test_reprs_never_show_a_secret(tmp_path, secrets):
    rules = HostRules.load(toml_file(tmp_path, FULL))
    shown = repr(rules) + "".join(map(repr, rules.rules))
    assert "s3cret" not in shown and "proxy-pw" not in shown
    assert repr(rules.rules[0]) == (
        "HostRule(pattern='api.example.com', concurrency=4, rate=10.0, retries=5, "
        "timeout=(3.0, 20.0), connect_timeout=2.0, headers={'Accept': 'application/json', "
        "'X-Api-Key': '***'}, bearer='***')")
    assert repr(rules) == (f"<HostRules from {str(tmp_path / 'hosts.toml')!r}: "
                           '"api.example.com", "*.cdn.example", "intranet.example">')


def test_rules_and_their_errors_pickle(secrets, tmp_path):
    rules = HostRules.load(toml_file(tmp_path, FULL))
    copy = pickle.loads(pickle.dumps(rules))
    assert copy == rules
    assert copy.for_host("x.cdn.example").timeout == (7.5, 7.5)  # the index is rebuilt
    error = pickle.loads(pickle.dumps(error_of({"h": {"rate": 0}})))
    assert str(error) == 'hosts: ["h"] rate: expected a number > 0, got 0'


# -- the option ------------------------------------------------------------------------------


def test_options_take_a_path_a_mapping_or_rules(tmp_path, secrets):
    path = toml_file(tmp_path, FULL)
    from_path = FetchOptions(hosts=path)
    assert isinstance(from_path.hosts, HostRules) and len(from_path.hosts) == 3
    assert FetchOptions(hosts=str(path)).hosts == from_path.hosts
    assert FetchOptions(hosts=from_path.hosts).hosts is from_path.hosts
    assert FetchOptions(hosts={"h.test": {"rate": 1}}).hosts.for_host("h.test").rate == 1.0
    assert from_path.replace(retries=0).hosts is from_path.hosts
    with pytest.raises(OptionError, match="hosts must be the path of a TOML file, a mapping of "
                                          "host patterns to settings, or HostRules, got 5"):
        FetchOptions(hosts=5)


def test_options_with_rules_pickle_and_show_no_secret(tmp_path, secrets):
    """Worker processes get the options pickled; the options are printed and logged."""
    options = FetchOptions(hosts=toml_file(tmp_path, FULL))
    assert pickle.loads(pickle.dumps(options)) == options
    assert "s3cret" not in repr(options) and "proxy-pw" not in repr(options)
    assert "hosts=<HostRules from " in repr(options)


def test_request_settings_use_the_hosts_timeouts():
    options = FetchOptions(timeout=(10, 30), hosts={"127.0.0.1": {"connect_timeout": 1},
                                                   "*.test": {"timeout": [2, 3]}})
    settings = RequestSettings(options, HostEnvironment(None, None, options.hosts))

    def timeout(url, host):
        return settings.kwargs(to_spec(url, options), host)["timeout"]

    assert timeout("http://127.0.0.1/", ("http", "127.0.0.1", 80)) == (1.0, 30.0)
    assert timeout("http://a.test/", ("http", "a.test", 80)) == (2.0, 3.0)
    assert timeout("http://b.example/", ("http", "b.example", 80)) == (10.0, 30.0)


# -- requests, on both paths -----------------------------------------------------------------


@pytest.fixture
def other_host():
    """A loopback server on 127.0.0.2: another host name than ``server``'s 127.0.0.1."""
    with LoopbackServer(host="127.0.0.2") as running:
        yield running


def seen(row):
    """The headers /echo received, for a row fetched with keep_body."""
    assert row.ok, (row.error, row.message)
    return json.loads(row.body)["headers"]


RULE_HEADERS = {"X-Api-Key": "s3cret-key", "Accept": "application/json"}


def redirect(server, to):
    return server.url("/redirect-to?url=" + quote(to, safe=""))


@pytest.mark.usefixtures("both_paths")
class TestRequests:
    def test_headers_and_auth_go_to_matching_hosts_only(self, server, other_host):
        hosts = {"127.0.0.1": {"headers": RULE_HEADERS, "auth": {"bearer": "t0ken"}}}
        items = [server.url("/echo"), {"url": server.url("/echo"), "headers": {"Accept": "own"}},
                 other_host.url("/echo")]
        first, own, other = fetch_all(items, hosts=hosts, headers={"Accept": "run", "X-Run": "1"},
                                      auth=("run-user", "run-pw"), keep_body=True, **QUICK)
        assert (seen(first)["Accept"], seen(first)["X-Api-Key"]) == ("application/json",
                                                                     "s3cret-key")
        assert seen(first)["Authorization"] == "Bearer t0ken"  # in place of the run's auth
        assert seen(first)["X-Run"] == "1"
        assert seen(own)["Accept"] == "own"  # an item's own header wins
        assert seen(other)["Accept"] == "run" and "X-Api-Key" not in seen(other)
        assert seen(other)["Authorization"].startswith("Basic ")  # the run's, elsewhere

    def test_basic_auth_from_the_environment_wins_over_netrc(self, server, monkeypatch,
                                                              tmp_path):
        netrc = tmp_path / "netrc"
        netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-pw\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("NETRC", str(netrc))
        monkeypatch.setenv("TEST_PASSWORD", "pw")
        hosts = {"127.0.0.1": {"auth": {"user": "ann", "password": {"env": "TEST_PASSWORD"}}}}
        table = fetch_all([server.url("/echo"), redirect(server, "/echo")], hosts=hosts,
                          keep_body=True, **QUICK)
        # ann:pw, on the first request and on a hop within the host alike
        assert [seen(row)["Authorization"] for row in table] == ["Basic YW5uOnB3"] * 2

    def test_a_hosts_read_timeout_applies_to_it_alone(self, server, other_host):
        hosts = {"127.0.0.1": {"timeout": [10, 0.1]}}
        slow = "/fault/slow-headers?delay=0.5"
        mine, other = fetch_all([server.url(slow), other_host.url(slow)], hosts=hosts, **QUICK)
        assert mine.error == "timeout"
        assert other.ok  # the run's 30 s read timeout

    def test_a_hosts_proxy_carries_its_requests(self, server, other_host):
        with HeadServer() as proxy:
            hosts = {"127.0.0.2": {"proxy": proxy.url()}, "127.0.0.1": {"proxy": False}}
            table = fetch_all([other_host.url("/echo"), server.url("/ok")], hosts=hosts,
                              proxies={"http": proxy.url()}, **QUICK)
        assert [row.ok for row in table] == [True, True]
        # The first through its host's proxy, the second straight (proxy = false).
        assert [line.split()[1] for line, _ in proxy.requests] == [other_host.url("/echo")]
        assert other_host.requests_served == 0 and server.requests_served == 1

    @pytest.mark.parametrize("run_proxies", [None, {}])
    def test_a_redirect_hop_uses_the_proxy_of_its_own_host(self, server, other_host,
                                                           run_proxies):
        with HeadServer() as proxy:
            hosts = {"127.0.0.2": {"proxy": proxy.url()}}
            row = fetch_all([redirect(server, other_host.url("/echo"))], hosts=hosts,
                            proxies=run_proxies, **QUICK)[0]
        assert row.ok
        assert [line.split()[1] for line, _ in proxy.requests] == [other_host.url("/echo")]

    def test_headers_and_auth_never_follow_a_redirect_to_another_host(self, server,
                                                                      other_host):
        hosts = {"127.0.0.1": {"headers": RULE_HEADERS, "auth": {"bearer": "t0ken"}}}
        there = redirect(server, other_host.url("/echo"))
        there_and_back = redirect(server, redirect(other_host, server.url("/echo")))
        same_host = redirect(server, "/echo")
        away, back, kept = fetch_all([there, there_and_back, same_host], hosts=hosts,
                                     headers={"Accept": "run"}, keep_body=True, **QUICK)
        for row in (away, back):
            assert "X-Api-Key" not in seen(row) and "Authorization" not in seen(row)
            assert seen(row)["Accept"] == "run"  # the run's, in place of the host's
        assert seen(kept)["X-Api-Key"] == "s3cret-key"  # a hop on the same host keeps them
        assert seen(kept)["Authorization"] == "Bearer t0ken"

    def test_nor_to_another_port_or_from_https_to_http(self, server, tls_server):
        tls, ca_path = tls_server
        hosts = {"127.0.0.1": {"headers": RULE_HEADERS, "auth": {"user": "ann",
                                                                  "password": "pw"}}}
        with LoopbackServer() as other_port:
            items = [redirect(server, other_port.url("/echo")),
                     redirect(tls, server.url("/echo"))]
            table = fetch_all(items, hosts=hosts, verify=ca_path, keep_body=True, **QUICK)
        for row in table:
            assert "X-Api-Key" not in seen(row) and "Authorization" not in seen(row)

    def test_a_hop_gets_neither_its_own_hosts_auth_nor_netrc_in_its_place(
            self, server, other_host, monkeypatch, tmp_path):
        netrc = tmp_path / "netrc"
        netrc.write_text("machine 127.0.0.2 login netrc-user password netrc-pw\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("NETRC", str(netrc))
        hosts = {"127.0.0.2": {"headers": {"X-Api-Key": "k"}, "auth": {"bearer": "t0ken"}}}
        row = fetch_all([redirect(server, other_host.url("/echo"))], hosts=hosts,
                        keep_body=True, **QUICK)[0]
        assert "X-Api-Key" not in seen(row) and "Authorization" not in seen(row)

    def test_worker_processes_get_the_rules_with_their_secrets_read(self, server,
                                                                    monkeypatch):
        monkeypatch.setenv("TEST_API_TOKEN", "t0ken")
        options = FetchOptions(workers=2, keep_body=True, retries=0,
                               hosts={"127.0.0.1": {"auth": {"bearer": {"env": "TEST_API_TOKEN"}}}})
        monkeypatch.delenv("TEST_API_TOKEN")  # read once, here, not again in the workers
        table = fetch_all([server.url("/echo")] * 4, options)
        assert [seen(row)["Authorization"] for row in table] == ["Bearer t0ken"] * 4


# -- the command line ------------------------------------------------------------------------


def invoke(*args, input=None):
    return CliRunner().invoke(main, [str(arg) for arg in args], input=input,
                              prog_name="batchfetch")


def test_cli_applies_the_file_and_names_unmatched_patterns(server, tmp_path):
    path = toml_file(tmp_path, '["127.0.0.1"]\nheaders = { X-Api-Key = "k" }\n\n'
                               '["*.nowhere.test"]\nrate = 1\n')
    result = invoke("-r", "0", "--body", "-f", "jsonl", "--hosts", path,
                    input=server.url("/echo"))
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert json.loads(row["body"])["headers"]["X-Api-Key"] == "k"
    assert result.stderr.splitlines()[-1] == f'{path}: no host fetched matched ["*.nowhere.test"]'
    quiet = invoke("-q", "-r", "0", "--hosts", path, input=server.url("/ok"))
    assert quiet.exit_code == 0 and quiet.stderr == ""


@pytest.mark.parametrize("text, message", [
    ('["api.example.com"]\nrate = "fast"\n', '["api.example.com"] rate: expected a number > 0, '
                                             'got "fast"'),
    ('["api.example.com"\nrate = 1\n', "not valid TOML: "),
    ('["api.example.com"]\nauth = { bearer = { env = "TEST_NO_SUCH_TOKEN" } }\n',
     '["api.example.com"] auth.bearer: the environment variable TEST_NO_SUCH_TOKEN is not set'),
])
def test_cli_a_bad_file_is_a_one_line_usage_error(tmp_path, monkeypatch, text, message):
    monkeypatch.delenv("TEST_NO_SUCH_TOKEN", raising=False)
    path = toml_file(tmp_path, text)
    result = invoke("--hosts", path, input="http://127.0.0.1:1/\n")
    assert result.exit_code == 2 and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert errors[0].startswith(f"Error: Invalid value for '--hosts': {path}: {message}")


def test_cli_a_missing_file_is_a_usage_error(tmp_path):
    result = invoke("--hosts", tmp_path / "nope.toml", input="")
    assert result.exit_code == 2 and "'--hosts': File" in result.stderr
