"""Secrets stay out of what batchfetch shows: URL passwords are masked in rows, messages
and logs (issue 13, item 3); header and cookie values never reach the logs."""
import json

import pytest
from click.testing import CliRunner
from head_server import HeadServer, response

from batchfetch import HTTPStatusError, fetch_all
from batchfetch.cli import main
from batchfetch.redaction import mask_passwords
from batchfetch.testing import refused_url

SECRET = "s3cr3t-VALUE"


def with_password(url: str, password: str = SECRET) -> str:
    return url.replace("http://", f"http://user:{password}@", 1)


def invoke(*args, input=None):
    return CliRunner().invoke(main, [str(arg) for arg in args], input=input,
                              prog_name="batchfetch")


@pytest.mark.usefixtures("both_paths")
def test_rows_show_masked_passwords_while_the_request_uses_them(server):
    handled = []
    urls = [with_password(server.url("/echo")), with_password(server.url("/status/404")),
            with_password(server.url("/redirect/2")),
            server.url("/redirect-to?url=" + with_password(server.url("/ok"), "hop-" + SECRET)),
            with_password(refused_url("/x")), with_password("http://[::1") + "/"]
    table = fetch_all(urls, keep_body=True, retries=0,
                      exception_handler=lambda item, exc: handled.append(exc))
    echo = json.loads(table[0].body)
    assert echo["headers"]["Authorization"].startswith("Basic ")  # the password was used
    assert [row.error for row in table] == ["", "http", "", "", "connect", "invalid_url"]
    for row in table:
        shown = json.dumps(row.to_record())
        assert SECRET not in shown, shown
    assert table[0].url == server.url("/echo").replace("http://", "http://user:***@")
    assert table[0].final_url == table[0].url
    assert table[2].final_url == server.url("/redirect/0").replace("http://", "http://user:***@")
    assert table[3].final_url == server.url("/ok").replace("http://", "http://user:***@")
    assert table[5].url == "http://user:***@[::1/"
    status_error = next(exc for exc in handled if isinstance(exc, HTTPStatusError))
    assert SECRET not in str(status_error)


def test_every_format_and_log_line_masks_url_passwords(server, tmp_path):
    for fmt in ("jsonl", "csv", "json", "table"):
        urls = tmp_path / f"urls-{fmt}.txt"
        flaky = with_password(server.url(f"/flaky/secret-{fmt}?fail=1"))  # a key per run
        urls.write_text(f"{with_password(server.url('/ok'))}\n{flaky}\nhttp://user:{SECRET}@\n")
        result = invoke("-vv", "--backoff", "0.01", "-f", fmt, urls)
        assert result.exit_code == 1, result.output
        assert SECRET not in result.stdout and SECRET not in result.stderr, fmt
        assert "user:***@" in result.stdout
        assert "batchfetch: retrying http://user:***@" in result.stderr  # -v logs the retry


def test_resume_compares_masked_urls(server, tmp_path):
    """Rows hold masked URLs, so --resume must mask its input's URLs to match them."""
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(with_password(server.url(path)) + "\n"
                            for path in ("/ok", "/status/503", "/json")))
    rows = tmp_path / "rows.jsonl"
    first = invoke("-q", "-r", "0", "-o", rows, urls)
    assert first.exit_code == 1, first.output
    resumed = invoke("-q", "-r", "0", "--resume", "-o", rows, urls)
    assert resumed.exit_code == 1, resumed.output  # the 503 row is kept, nothing refetched
    again = invoke("-r", "0", "--resume", "--retry-failed", "--ok-status", "100-599", "-o",
                   rows, urls)
    assert again.exit_code == 0, again.output
    assert "resume: 3 rows already in" in again.stderr
    written = [json.loads(line) for line in rows.read_text().splitlines()]
    assert sorted(row["index"] for row in written) == [0, 1, 2]
    assert all(row["url"].startswith("http://user:***@") for row in written)
    assert SECRET not in rows.read_text()


def test_authorization_cookie_and_proxy_credentials_stay_out_of_logs(server):
    """-vv logs every connection and request line (urllib3 included): none of the header,
    cookie, basic-auth or proxy credentials appear, though each was sent."""
    with HeadServer(lambda line, headers: response(body=b"proxied")) as proxy:
        proxy_url = proxy.url().replace("http://", f"http://proxyuser:{SECRET}-proxy@")
        result = invoke("-vv", "-r", "0", "-H", f"Authorization: Bearer {SECRET}-bearer",
                        "-b", f"session={SECRET}-cookie", "--proxy", proxy_url,
                        input="http://127.0.0.1:9/via-proxy\n"
                              + with_password("http://127.0.0.1:9/basic") + "\n")
    assert result.exit_code == 0, result.output
    plain, basic = (headers for _, headers in sorted(proxy.requests,
                                                     key=lambda request: "/basic" in request[0]))
    assert plain["authorization"] == f"Bearer {SECRET}-bearer"
    assert plain["cookie"] == f"session={SECRET}-cookie"
    assert plain["proxy-authorization"].startswith("Basic ")  # the proxy's credentials too
    assert basic["authorization"].startswith("Basic ")  # the URL's password, as basic auth
    assert "127.0.0.1:9" in result.stderr  # the log did describe this request
    assert SECRET not in result.stderr and SECRET not in result.stdout


def test_mask_passwords_masks_the_password_only():
    assert mask_passwords("http://a:b@h/p?k=v") == "http://a:***@h/p?k=v"
    assert mask_passwords("http://token@h/") == "http://token@h/"  # user info without password
    assert mask_passwords("https://u:p@ss@h:8/x") == "https://u:***@h:8/x"
    assert mask_passwords("see http://u:p@h and ftp://v:q@i") == \
        "see http://u:***@h and ftp://v:***@i"
    assert mask_passwords("http://h/?next=http://u:p@i/") == "http://h/?next=http://u:***@i/"


def test_options_and_option_errors_never_show_credentials():
    from batchfetch import FetchOptions, OptionError

    options = FetchOptions(auth=("ann", SECRET), cookies={"sid": SECRET},
                           headers={"Authorization": SECRET, "X-Api-Key": SECRET, "Accept": "a"},
                           proxies={"http": f"http://proxy:{SECRET}@127.0.0.1:3128"})
    shown = repr(options)
    assert SECRET not in shown and "'Accept': 'a'" in shown and "('ann', '***')" in shown
    with pytest.raises(OptionError) as refused:
        FetchOptions(auth=("ann", SECRET, "x"))
    assert SECRET not in str(refused.value) and refused.value.value[1] == SECRET


def test_malformed_urls_with_passwords_are_masked_too():
    """A URL with a typo becomes an invalid_url row whose url column is the line."""
    lines = [f"alice:{SECRET}@127.0.0.1/x", f"http:/alice:{SECRET}@127.0.0.1/x",
             f"http:alice:{SECRET}@127.0.0.1/x", f"//alice:{SECRET}@127.0.0.1/x"]
    result = invoke("-q", input="".join(line + "\n" for line in lines))
    assert result.exit_code == 1
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["error"] for row in rows] == ["invalid_url"] * 4
    assert SECRET not in result.stdout


def test_bad_user_flag_does_not_repeat_what_was_typed():
    result = invoke("-u", SECRET, input="")
    assert result.exit_code == 2 and SECRET not in result.output


@pytest.mark.parametrize("url", [f"http://u:pa ss{SECRET}@127.0.0.1:9/x",
                                 f"http://u:pa/{SECRET}@127.0.0.1/x",
                                 f"http://u:pa#{SECRET}@127.0.0.1/x",
                                 f"http://u:{SECRET}@127.0.0.1:99999/x"])
def test_passwords_with_spaces_slashes_or_hashes_are_masked(url):
    """The pattern stopped at a space, '/' or '#': such a password reached the row."""
    row = fetch_all([url], retries=0)[0]
    assert SECRET not in json.dumps(row.to_record()), row
