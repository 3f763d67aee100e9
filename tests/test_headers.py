"""Header and cookie values are checked once, before any request path (issue 13, item 5):
the fast path used to send values requests refuses (a folded line, leading whitespace)."""
import pytest
from click.testing import CliRunner
from requests.exceptions import InvalidHeader
from requests.utils import check_header_validity

from batchfetch import FetchOptions, OptionError, fetch_all
from batchfetch.cli import main
from batchfetch.headers import cookie_problem, header_problem

BAD_VALUES = ["a\r\n b", "a\n\tb", "a\rb", "a\nb", " leading", "\tleading", "x\r\n"]


@pytest.mark.parametrize("value", BAD_VALUES + [5, None, b"a\r\n b", b" x"])
def test_bad_values_are_refused_as_requests_refuses_them(value):
    with pytest.raises(InvalidHeader):
        check_header_validity(("X-Test", value))
    assert header_problem("X-Test", value)


@pytest.mark.parametrize("name, value", [
    ("X-Test", "plain"), ("X-Test", ""), ("X-Test", "trailing "), ("X-Test", "in side\tx"),
    ("Odd Name", "v"), ("X-Test", b"bytes"), ("X-Test", "caf\u00e9"), ("x", "a:b; c=d")])
def test_good_values_pass_as_requests_passes_them(name, value):
    check_header_validity((name, value))
    assert header_problem(name, value) is None


@pytest.mark.parametrize("name", ["", " X", "X:Y", "X\r\nY", ":authority", "Caf\u00e9"])
def test_bad_names_are_refused(name):
    assert header_problem(name, "v").startswith(f"header name {name!r} is not valid")


def test_values_outside_latin_1_are_refused_before_sending():
    """http.client would fail on them only when sending (a 'protocol' row with a traceback)."""
    assert "outside Latin-1" in header_problem("X-Price", "10 \u20ac")


@pytest.mark.usefixtures("both_paths")
@pytest.mark.parametrize("value", BAD_VALUES)
def test_an_items_bad_header_is_an_invalid_request_row_on_both_paths(server, value):
    item = {"url": server.url("/echo"), "headers": {"X-Injected": value}}
    row = fetch_all([item], retries=0)[0]
    assert (row.error, row.attempts, server.hits.get("/echo", 0)) == ("invalid_request", 0, 0)
    assert row.message.startswith("header 'X-Injected': its value")
    assert value.strip() not in row.message  # a value may be a token: never repeated


@pytest.mark.usefixtures("both_paths")
def test_an_items_none_header_still_removes_a_default(server):
    import json

    item = {"url": server.url("/echo"), "headers": {"Accept": None}}
    row = fetch_all([item], keep_body=True, retries=0)[0]
    assert row.ok and "Accept" not in json.loads(row.body)["headers"]


@pytest.mark.usefixtures("both_paths")
@pytest.mark.parametrize("item_headers, item_cookies, problem", [
    ({"X-Count": 5}, {}, "header 'X-Count': its value must be a string, got int"),
    ({"X-Nul": "a\x00b"}, {}, "header 'X-Nul': its value has a control character (0x00) at "
                              "character 2"),
    ({"X-Esc": "\x1b[31m"}, {}, "header 'X-Esc': its value has a control character (0x1b)"),
    ({}, {"s": "a\r\nX-Evil: 1"}, "cookie 's': its value has a line break (CR or LF) at "
                                  "character 2"),
    ({}, {"": "x"}, "cookie name '' is not valid"),
])
def test_other_bad_header_and_cookie_items(server, item_headers, item_cookies, problem):
    item = {"url": server.url("/echo"), "headers": item_headers, "cookies": item_cookies}
    row = fetch_all([item], retries=0)[0]
    assert row.error == "invalid_request" and row.message.startswith(problem), row.message


def test_bad_option_values_raise_option_errors_naming_the_header():
    with pytest.raises(OptionError, match=r"^headers: header 'X-A': its value has a line break"):
        FetchOptions(headers={"X-A": "a\r\n b"})
    with pytest.raises(OptionError, match=r"^user_agent: header 'User-Agent': its value"):
        FetchOptions(user_agent="agent\r\nX-Evil: 1")
    with pytest.raises(OptionError, match=r"^cookies: cookie 'a': its value"):
        FetchOptions(cookies={"a": "b\nc"})
    assert cookie_problem("a", "1; b=2") is None  # curl's -b 'a=1; b=2' habit still works


@pytest.mark.parametrize("args, message", [
    (["-H", "X-A: a\r\n b"], "Invalid value for '-H' / '--header': header 'X-A': its value "
                             "has a line break (CR or LF) at character 2"),
    (["-H", "X-A: a\nb"], "Invalid value for '-H' / '--header': header 'X-A': its value"),
    (["-H", "X-A: \r\nb"], "Invalid value for '-H' / '--header': header 'X-A': its value "
                           "has a line break"),
    (["-A", "agent\r\nX-Evil: 1"], "Invalid value for '-A' / '--user-agent': header "
                                   "'User-Agent': its value"),
    (["-b", "s=a\r\nX: y"], "Invalid value for '-b' / '--cookie': cookie 's': its value"),
])
def test_bad_flag_values_are_one_line_usage_errors(args, message):
    result = CliRunner().invoke(main, args, input="", prog_name="batchfetch")
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("both_paths")
def test_a_cookie_outside_latin_1_is_refused_before_sending(server):
    """It failed only when sent: a 'protocol' row with an 'unexpected exception' traceback."""
    row = fetch_all([{"url": server.url("/echo"), "cookies": {"a": "\u20ac"}}], retries=0)[0]
    assert (row.error, row.attempts) == ("invalid_request", 0)
    assert row.message.startswith("cookie 'a': its value has a character outside Latin-1")


def test_basic_auth_outside_latin_1_is_an_option_error():
    with pytest.raises(OptionError, match="^auth: the user or the password has a character "
                                          "outside Latin-1"):
        FetchOptions(auth=("\u20ac", "x"))
    assert FetchOptions(auth=("ann", "s\u00e9cret")).auth == ("ann", "s\u00e9cret")
