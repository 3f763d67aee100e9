"""The batchfetch command: flags, input, formats, exit codes, usage errors, pipes and Ctrl-C.

Every test fetches from a 127.0.0.1 server it starts (the ``server`` fixture) or none.
"""
import base64
import csv
import io
import json
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from batchfetch import FetchOptions
from batchfetch.results import COLUMNS
from batchfetch.cli.flags import keyword_of, parse_pair, parse_size
from batchfetch.cli import main

ROOT = Path(__file__).resolve().parent.parent
FAST = ["-r", "0"]



def invoke(*args, input=None, env=None):
    """Run the command in-process; the loopback server keeps serving meanwhile."""
    return CliRunner().invoke(main, [str(arg) for arg in args], input=input, env=env,
                              prog_name="batchfetch")


def rows_of(result):
    """The JSON Lines rows of a run, in input order."""
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    return sorted(rows, key=lambda row: row["index"])


def echoed(row):
    """What /echo saw, from a row fetched with --body."""
    return json.loads(row["body"])


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


# -- input ---------------------------------------------------------------------------------


def test_url_file_gives_one_jsonl_row_per_url_and_exit_1_on_a_failure(server, tmp_path):
    urls = write(tmp_path, "urls.txt", f"{server.url('/ok')}\n{server.url('/status/404')}\n")
    result = invoke(*FAST, urls)
    assert result.exit_code == 1, result.output
    rows = rows_of(result)
    assert [(r["index"], r["status"], r["ok"], r["error"]) for r in rows] == [
        (0, 200, True, ""), (1, 404, False, "http")]
    assert tuple(rows[0]) == COLUMNS
    assert "2 fetched: 1 ok, 1 failed" in result.stderr and "p50" in result.stderr


def test_stdin_skips_blank_and_comment_lines_and_exits_0(server):
    text = f"# my urls\n\n  {server.url('/ok')}  \n\t\n{server.url('/json')}\n"
    result = invoke(*FAST, input=text)
    assert result.exit_code == 0, result.output
    assert [r["url"] for r in rows_of(result)] == [server.url("/ok"), server.url("/json")]


def test_empty_input_is_success():
    result = invoke(input="# nothing\n")
    assert (result.exit_code, result.stdout) == (0, "")
    assert "0 fetched" in result.stderr


def test_bad_text_lines_become_rows_naming_their_line(server):
    text = f"{server.url('/ok')}\n# note\nnot a url\nftp://127.0.0.1/x\n{server.url('/ok')}\n"
    result = invoke(*FAST, input=text)
    assert result.exit_code == 1
    rows = rows_of(result)
    assert [r["error"] for r in rows] == ["", "invalid_url", "invalid_url", ""]
    assert rows[1]["message"] == ("line 3 of standard input: no scheme in 'not a url' "
                                  "(expected http:// or https://)")
    assert rows[2]["message"].startswith("line 4 of standard input: unsupported scheme 'ftp'")


def test_bad_jsonl_lines_become_rows_naming_their_line(server):
    text = "\n".join([
        json.dumps({"id": 1, "url": server.url("/ok")}),
        '{"id": 2, "url": ',
        json.dumps({"id": 3}),
        "[1, 2]",
        json.dumps({"id": 5, "url": "nope"}),
        json.dumps({"id": 6, "url": server.url("/ok"), "color": "red"}),
        json.dumps(server.url("/json")),  # a JSON string is a URL, as iter_fetch takes it
    ])
    result = invoke(*FAST, "--input-format", "jsonl", input=text)
    assert result.exit_code == 1
    rows = rows_of(result)
    assert [(r["id"], r["error"]) for r in rows] == [
        (1, ""), (None, "invalid_request"), (3, "invalid_request"), (None, "invalid_request"),
        (5, "invalid_url"), (6, "invalid_request"), (None, "")]
    assert rows[1]["message"].startswith("line 2 of standard input: invalid JSON: ")
    assert rows[1]["url"] == '{"id": 2, "url":'
    assert rows[2]["message"] == "line 3 of standard input: request spec has no 'url'"
    assert rows[3]["message"].startswith("line 4 of standard input: an item must be")
    assert rows[4]["message"].startswith("line 5 of standard input: no scheme in 'nope'")
    assert rows[5]["message"].startswith("line 6 of standard input: unknown key(s) color")


def test_jsonl_posts_each_body_and_returns_each_id(server, tmp_path):
    specs = [{"id": 7, "url": server.url("/echo"), "method": "POST", "json": {"n": 1},
              "headers": {"X-Call": "first"}},
             {"id": "b", "url": server.url("/echo"), "method": "PUT", "data": "k=v",
              "params": {"q": "2"}, "cookies": {"c": "3"}}]
    calls = write(tmp_path, "calls.jsonl", "".join(json.dumps(s) + "\n" for s in specs))
    result = invoke(*FAST, "--body", calls)  # detected as JSON Lines by its name
    assert result.exit_code == 0, result.output
    first, second = rows_of(result)
    assert (first["id"], first["method"], second["id"], second["method"]) == (7, "POST", "b",
                                                                               "PUT")
    assert echoed(first)["json"] == {"n": 1} and echoed(first)["headers"]["X-Call"] == "first"
    assert (echoed(second)["body"], echoed(second)["query"], echoed(second)["cookies"]) == (
        "k=v", {"q": "2"}, {"c": "3"})
    assert server.hits["/echo"] == 2


def test_input_format_auto_sniffs_json_and_text_forces_urls(server, tmp_path):
    line = json.dumps({"id": 1, "url": server.url("/ok")}) + "\n"
    assert rows_of(invoke(*FAST, input=line))[0]["id"] == 1  # stdin: sniffed from "{"
    forced = invoke(*FAST, "--input-format", "text", write(tmp_path, "x.jsonl", line))
    assert rows_of(forced)[0]["error"] == "invalid_url"


def test_input_is_read_lazily_from_a_pipe(server, child_env):
    """A row comes out while the pipe is still open: an endless pipe starts at once
    (the library pulls input in its own greenlet, so a waiting pipe holds nothing up)."""
    proc = subprocess.Popen([sys.executable, "-m", "batchfetch", "-q", "-f", "jsonl",
                             *FAST], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env)
    try:
        proc.stdin.write(f"{server.url('/ok')}\n".encode())
        proc.stdin.flush()
        first = json.loads(proc.stdout.readline())
        assert first["status"] == 200 and proc.poll() is None
        proc.stdin.write(f"{server.url('/status/201')}\n".encode())
        proc.stdin.close()
        second = json.loads(proc.stdout.readline())
        assert second["status"] == 201 and proc.wait() == 0
    finally:
        proc.kill()
        proc.wait()


# -- request flags -------------------------------------------------------------------------


def test_data_implies_post_with_a_form_body(server):
    result = invoke(*FAST, "--body", "-d", "a=1", "--data", "b=2", input=server.url("/echo"))
    seen = echoed(rows_of(result)[0])
    assert (seen["method"], seen["body"]) == ("POST", "a=1&b=2")
    assert seen["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    put = invoke(*FAST, "--body", "-X", "PUT", "-d", "a=1", input=server.url("/echo"))
    assert echoed(rows_of(put)[0])["method"] == "PUT"


def test_data_at_file_reads_the_file_without_line_breaks_as_curl_does(server, tmp_path):
    """Issue 13, item 15: -d @file sent the text '@file'."""
    body = write(tmp_path, "form.txt", "a=1&\r\nb=2\n")
    (tmp_path / "raw.bin").write_bytes(b"\x00\xff\n\xfe")
    result = invoke(*FAST, "--body", "-d", f"@{body}", "-d", "c=3", input=server.url("/echo"))
    seen = echoed(rows_of(result)[0])
    assert (seen["method"], seen["body"]) == ("POST", "a=1&b=2&c=3")
    assert seen["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    binary = invoke(*FAST, "--body", "-H", "Content-Type: application/octet-stream", "-d",
                    f"@{tmp_path / 'raw.bin'}", input=server.url("/echo"))
    assert echoed(rows_of(binary)[0])["headers"]["Content-Length"] == "3"


def test_data_at_dash_reads_stdin_when_the_input_is_a_file(server, tmp_path):
    urls = write(tmp_path, "urls.txt", server.url("/echo") + "\n")
    result = invoke(*FAST, "--body", "-d", "@-", urls, input="from=stdin\n")
    assert result.exit_code == 0, result.output
    assert echoed(rows_of(result)[0])["body"] == "from=stdin"
    clash = invoke(*FAST, "-d", "@-", input=server.url("/echo"))
    assert clash.exit_code == 2 and clash.stdout == ""
    assert "Error: -d @- reads the body from standard input, which is an input too: give " \
           "the URLs as arguments or in a file" in clash.stderr
    missing = invoke(*FAST, "-d", f"@{tmp_path / 'nope'}", urls)
    assert missing.exit_code == 2 and "'-d' / '--data': cannot read" in missing.stderr


def test_a_jsonl_data_string_gets_the_form_content_type_as_d_does(server, tmp_path):
    """It was sent with no Content-Type at all, while -d sends the form type."""
    specs = write(tmp_path, "calls.jsonl", "\n".join(json.dumps(spec) for spec in [
        {"url": server.url("/echo"), "method": "POST", "data": "a=1"},
        {"url": server.url("/echo"), "method": "POST", "data": "<x/>",
         "headers": {"content-type": "text/xml"}},
        {"url": server.url("/echo"), "method": "POST", "json": {"a": 1}}]) + "\n")
    form, xml, as_json = (echoed(row)["headers"] for row in rows_of(invoke(*FAST, "--body",
                                                                            specs)))
    assert form["Content-Type"] == "application/x-www-form-urlencoded"
    assert xml["content-type"] == "text/xml" and "Content-Type" not in xml
    assert as_json["Content-Type"] == "application/json"


def test_json_sets_content_type_and_accept_and_implies_post(server):
    result = invoke(*FAST, "--body", "--json", '{"op": "ping", "n": [1]}',
                    input=server.url("/echo"))
    seen = echoed(rows_of(result)[0])
    assert (seen["method"], seen["json"]) == ("POST", {"op": "ping", "n": [1]})
    assert seen["headers"]["Content-Type"] == "application/json"
    assert seen["headers"]["Accept"] == "application/json"
    mine = invoke(*FAST, "--body", "--json", "[]", "-H", "accept: text/plain",
                  input=server.url("/echo"))
    assert echoed(rows_of(mine)[0])["headers"]["accept"] == "text/plain"  # -H wins


def test_header_is_repeatable_and_user_agent_and_method_apply(server):
    result = invoke(*FAST, "--body", "-H", "X-One: 1", "--header", "X-Two:  two words ",
                    "-A", "probe/2", "--method", "delete", input=server.url("/echo"))
    row = rows_of(result)[0]
    seen = echoed(row)
    assert (seen["headers"]["X-One"], seen["headers"]["X-Two"]) == ("1", "two words")
    assert seen["headers"]["User-Agent"] == "probe/2"
    assert row["method"] == seen["method"] == "DELETE"
    default = echoed(rows_of(invoke(*FAST, "--body", input=server.url("/echo")))[0])
    assert default["headers"]["User-Agent"].startswith("batchfetch/")


def test_user_cookie_and_param(server):
    result = invoke(*FAST, "--body", "-u", "ann:s3:cret", "-b", "a=1", "--cookie", "b=x=y",
                    "--param", "q=1", "--param", "lang=en", input=server.url("/echo"))
    row = rows_of(result)[0]
    seen = echoed(row)
    expected = "Basic " + base64.b64encode(b"ann:s3:cret").decode()
    assert seen["headers"]["Authorization"] == expected
    assert seen["cookies"] == {"a": "1", "b": "x=y"}
    assert seen["query"] == {"q": "1", "lang": "en"}
    assert row["final_url"].endswith("/echo?q=1&lang=en")


def test_user_keeps_spaces_and_may_be_empty_as_in_curl(server):
    """-u ':token' (an empty user) is what some APIs want; -u stripped ' pass' to 'pass'."""
    for value in (":tok en", "ann: pass"):
        seen = echoed(rows_of(invoke(*FAST, "--body", "-u", value,
                                     input=server.url("/echo")))[0])
        assert seen["headers"]["Authorization"] == \
            "Basic " + base64.b64encode(value.encode()).decode()


def test_redirect_flags(server):
    follow = rows_of(invoke(*FAST, input=server.url("/redirect/2")))[0]
    assert (follow["status"], follow["final_url"]) == (200, server.url("/redirect/0"))
    stay = rows_of(invoke(*FAST, "--no-redirects", input=server.url("/redirect/2")))[0]
    assert (stay["status"], stay["ok"]) == (302, True)
    capped = rows_of(invoke(*FAST, "--max-redirects", "1", input=server.url("/redirect/3")))[0]
    assert capped["error"] == "too_many_redirects"


def test_ok_status_decides_ok_and_the_exit_code(server):
    urls = f"{server.url('/status/404')}\n{server.url('/status/201')}\n"
    result = invoke(*FAST, "--ok-status", "200-299,404", input=urls)
    assert result.exit_code == 0 and [r["ok"] for r in rows_of(result)] == [True, True]
    strict = invoke(*FAST, "--ok-status", "200", input=urls)
    assert strict.exit_code == 1 and [r["ok"] for r in rows_of(strict)] == [False, False]


def test_body_column_and_max_bytes(server):
    result = invoke(*FAST, "--body", input=server.url("/bytes/20"))
    row = rows_of(result)[0]
    assert (row["body"], row["body_encoding"]) == ("0123456789abcdef0123", "utf-8")
    assert "body" not in rows_of(invoke(*FAST, input=server.url("/bytes/20")))[0]
    capped = invoke(*FAST, "--body", "--max-bytes", "1K", input=server.url("/bytes/5000"))
    assert rows_of(capped)[0]["error"] == "too_large" and capped.exit_code == 1
    roomy = invoke(*FAST, "--max-bytes", "5k", input=server.url("/bytes/5000"))
    assert rows_of(roomy)[0]["size"] == 5000 and roomy.exit_code == 0


def test_body_is_capped_at_10m_unless_max_bytes_none(server):
    """Issue 13, item 1: --body without --max-bytes kept a gzip bomb whole."""
    bomb = server.url(f"/gzip/{11 * 1024 * 1024}")
    capped = invoke(*FAST, "--body", input=bomb)
    assert rows_of(capped)[0]["error"] == "too_large" and capped.exit_code == 1
    lifted = invoke(*FAST, "--body", "--max-bytes", "none", input=bomb)
    assert rows_of(lifted)[0]["size"] == 11 * 1024 * 1024 and lifted.exit_code == 0
    auto = invoke(*FAST, "--body", "--max-bytes", "auto", input=bomb)
    assert rows_of(auto)[0]["error"] == "too_large"


def test_none_on_the_command_line_lifts_a_limit():
    """'none' parsed to None, which was then dropped as "not given": --deadline none kept
    the 120 s deadline, and --max-bytes none would have kept the kept-body cap."""
    from batchfetch.cli.flags import build_options

    args = ["--deadline", "none", "-t", "none", "--max-bytes", "none", "--body"]
    with main.make_context("batchfetch", args) as ctx:
        flags = {param.name: ctx.params[param.name] for param in ctx.command.params
                 if keyword_of(param) or param.name in ("insecure", "cacert", "key")}
        options = build_options(ctx, flags)
    assert (options.deadline, options.timeout, options.max_bytes) == (None, (None, None), None)
    assert options.body_limit is None


def test_save_streams_each_body_to_a_file(server, tmp_path):
    result = invoke(*FAST, "--save", tmp_path / "bodies", input=server.url("/bytes/20"))
    row = rows_of(result)[0]
    assert Path(row["path"]).parent == tmp_path / "bodies"
    assert Path(row["path"]).read_bytes() == b"0123456789abcdef0123"


@pytest.mark.parametrize("text, size", [("0", 0), ("512", 512), ("512K", 524288),
                                        ("10M", 10 * 1024 ** 2), ("1G", 1024 ** 3),
                                        ("1.5MiB", 1572864), ("2 kb", 2048)])
def test_parse_size(text, size):
    assert parse_size(text) == size


def test_parse_pair():
    assert parse_pair("X-A:b:c", ":") == ("X-A", "b:c")
    assert parse_pair(" n = v ", "=") == ("n", " v ")
    with pytest.raises(ValueError, match="not of the form 'Name: value'"):
        parse_pair("X-A", ":")


# -- timing, retries and concurrency ----------------------------------------------------------


def test_timeout_and_deadline(server):
    hung = rows_of(invoke("-r", "0", "-t", "0.3", input=server.url("/fault/hang")))[0]
    assert hung["error"] == "timeout"
    trickle = server.url("/fault/trickle?interval=0.1&bytes=20")
    late = rows_of(invoke("-r", "0", "--deadline", "0.3", input=trickle))[0]
    # Cut mid-body (the trickle lasts 2 s), not before 0.3 s; how soon is for bench/.
    assert late["error"] == "deadline" and late["size"] < 20 and late["elapsed"] >= 0.3


def test_connect_timeout_overrides_timeout_for_connecting():
    """A listener whose accept queue is full leaves new connections unanswered."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(address)
        try:
            result = invoke("-r", "0", "-t", "5", "--connect-timeout", "0.3",
                            input=f"http://127.0.0.1:{address[1]}/")
            row = rows_of(result)[0]
            # The message names the connect timeout used: 0.3, not -t's 5 (no clock needed).
            assert row["error"] == "connect_timeout"
            assert row["message"].endswith("(connect timeout=0.3)"), row["message"]
        finally:
            for filler in fillers:
                filler.close()


def test_retries_backoff_and_verbose_logging(server):
    once = rows_of(invoke("-r", "0", input=server.url("/flaky/a?fail=1")))[0]
    assert (once["status"], once["attempts"]) == (503, 1)
    result = invoke("-r", "1", "--backoff", "0.4", "-v", input=server.url("/flaky/b?fail=1"))
    row = rows_of(result)[0]
    assert (row["ok"], row["attempts"]) == (True, 2) and row["elapsed"] >= 0.2
    assert "batchfetch: retrying " + server.url("/flaky/b?fail=1") in result.stderr
    assert "retrying" not in invoke("-r", "1", input=server.url("/flaky/c?fail=1")).stderr


def test_retry_on_and_retry_non_idempotent(server):
    teapot = server.url("/flaky/t?fail=1&status=418")
    assert rows_of(invoke("-r", "1", "--backoff", "0", input=teapot))[0]["status"] == 418
    retried = rows_of(invoke("-r", "1", "--backoff", "0", "--retry-on", "418",
                             input=server.url("/flaky/u?fail=1&status=418")))[0]
    assert (retried["status"], retried["attempts"]) == (200, 2)
    none = rows_of(invoke("-r", "1", "--retry-on", "none",
                          input=server.url("/flaky/v?fail=1&status=503")))[0]
    assert none["attempts"] == 1
    post = ["-r", "1", "--backoff", "0", "-d", "x=1"]
    assert rows_of(invoke(*post, input=server.url("/flaky/w?fail=1&status=500")))[0][
        "status"] == 500
    posted = rows_of(invoke(*post, "--retry-non-idempotent",
                            input=server.url("/flaky/x?fail=1&status=500")))[0]
    assert (posted["status"], posted["attempts"]) == (200, 2)


def test_max_retry_wait_refuses_a_long_retry_after(server):
    url = server.url("/status/429?retry_after=30")
    row = rows_of(invoke("-r", "2", "--max-retry-wait", "1", input=url))[0]
    assert (row["status"], row["attempts"], row["error"]) == (429, 1, "http")
    assert "more than max_retry_wait=1 s" in row["message"]


@pytest.mark.parametrize("flags, connections", [
    (["-c", "4"], 4), (["-c", "1"], 1), (["--concurrency", "4", "--per-host", "1"], 1),
    (["-c", "4", "--max-pending", "1"], 1)])
def test_concurrency_limits_show_in_connections(server, flags, connections):
    result = invoke(*FAST, *flags, input="\n".join([server.url("/delay/0.1")] * 4))
    assert result.exit_code == 0
    assert server.connections_accepted == connections


def test_rate_spaces_starts(server):
    started = time.monotonic()
    result = invoke(*FAST, "--rate", "10", input="\n".join([server.url("/ok")] * 4))
    assert result.exit_code == 0 and time.monotonic() - started >= 0.3


# -- TLS and proxies -----------------------------------------------------------------------


def test_insecure_and_cacert(tls_server):
    server, ca_path = tls_server
    url = server.url("/ok")
    assert rows_of(invoke(*FAST, input=url))[0]["error"] == "tls"
    assert rows_of(invoke(*FAST, "--cacert", ca_path, input=url))[0]["status"] == 200
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        insecure = invoke(*FAST, "-k", input=url)
    assert rows_of(insecure)[0]["status"] == 200
    assert not [w for w in caught if "Unverified HTTPS request" in str(w.message)]
    with warnings.catch_warnings(record=True) as caught:  # the control: urllib3 does warn
        warnings.simplefilter("always")
        from batchfetch import fetch_all
        fetch_all([url], verify=False, retries=0)
    assert [w for w in caught if "Unverified HTTPS request" in str(w.message)]


def test_client_cert_and_key(tls_server, tls_ca, tmp_path):
    server, ca_path = tls_server
    client = tls_ca.issue_cert("client@example.test")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    args = [*FAST, "--cacert", ca_path, "--cert", cert]
    assert rows_of(invoke(*args, "--key", key, input=server.url("/ok")))[0]["status"] == 200
    wrong = tls_ca.issue_cert("other@example.test").private_key_pem
    wrong.write_to_path(str(tmp_path / "wrong.key"))
    mismatched = invoke(*args, "--key", tmp_path / "wrong.key", input=server.url("/ok"))
    assert rows_of(mismatched)[0]["error"] == "tls"


def test_proxy_receives_the_request(server):
    result = invoke(*FAST, "--proxy", server.base_url, input="http://batchfetch.invalid/ok")
    assert server.hits["http://batchfetch.invalid/ok"] == 1  # absolute-form: a proxy request
    assert rows_of(result)[0]["status"] == 404


# -- output --------------------------------------------------------------------------------


def test_csv_streams_every_column(server):
    result = invoke(*FAST, "-f", "csv", "--body", input=server.url("/ok"))
    (row,) = csv.DictReader(io.StringIO(result.stdout))
    assert (row["status"], row["ok"], row["body"], row["body_encoding"]) == (
        "200", "true", "ok\n", "utf-8")
    assert list(row)[:3] == ["index", "id", "url"] and list(row)[-1] == "body_encoding"


def test_json_and_table_come_in_input_order(server):
    """Row 1 is a bad line: it needs no request, so it is done before row 0 whatever the
    load (with /delay/0.3 and /ok, the /ok row had to beat the delay)."""
    urls = f"{server.url('/ok')}\nnot a url\n"
    document = json.loads(invoke(*FAST, "-f", "json", input=urls).stdout)
    assert [row["index"] for row in document] == [0, 1]
    assert [row["index"] for row in rows_of(invoke(*FAST, "-f", "jsonl", input=urls))] == [0, 1]
    jsonl = invoke(*FAST, input=urls).stdout.splitlines()  # a pipe: completion order
    assert [json.loads(line)["index"] for line in jsonl] == [1, 0]
    table = invoke(*FAST, "-f", "table", input=urls).stdout.splitlines()
    assert table[0].split() == ["#", "status", "error", "ms", "bytes", "tries", "url",
                                "message"]
    assert [line.split()[0] for line in table[1:]] == ["0", "1"]


@pytest.mark.parametrize("name, check", [
    ("rows.csv", lambda text: next(csv.DictReader(io.StringIO(text)))["status"] == "200"),
    ("rows.jsonl", lambda text: json.loads(text.splitlines()[0])["status"] == 200),
    ("rows.json", lambda text: json.loads(text)[0]["status"] == 200),
    ("rows.txt", lambda text: text.split()[:2] == ["#", "status"]),
    ("rows", lambda text: json.loads(text)["status"] == 200)])
def test_output_file_format_follows_its_extension(server, tmp_path, name, check):
    result = invoke(*FAST, "--output", tmp_path / name, input=server.url("/ok"))
    assert result.exit_code == 0 and result.stdout == ""
    assert check((tmp_path / name).read_text())


def test_format_flag_beats_the_extension_and_quiet_silences_the_summary(server, tmp_path):
    result = invoke(*FAST, "-q", "-o", tmp_path / "rows.txt", "--format", "csv",
                    input=server.url("/ok"))
    assert (tmp_path / "rows.txt").read_text().startswith("index,id,url")
    assert result.stderr == ""


def test_environment_gives_defaults_and_flags_win(server):
    env = {"BATCHFETCH_OK_STATUS": "404", "BATCHFETCH_HEADERS": "X-A: 1\nX-B: two words",
           "BATCHFETCH_RETRIES": "0", "BATCHFETCH_KEEP_BODY": "1"}
    result = invoke(input=f"{server.url('/status/404')}\n{server.url('/echo')}\n", env=env)
    missing, echo = rows_of(result)
    assert missing["ok"] and missing["attempts"] == 1 and not echo["ok"]
    assert echoed(echo)["headers"]["X-A"] == "1" and echoed(echo)["headers"]["X-B"] == "two words"
    overridden = invoke("--ok-status", "200", input=server.url("/status/404"), env=env)
    assert overridden.exit_code == 1


# -- usage errors --------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["-c", "0"], "Invalid value for '-c' / '--concurrency' / '--parallel-max': must be an "
                  "integer >= 1, got 0"),
    (["--per-host", "0"], "'--per-host': must be an integer >= 1 or None, got 0"),
    (["--rate", "-1"], "'--rate': must be a number > 0 or None, got -1.0"),
    (["-t", "soon"], "'-t' / '--timeout': 'soon' is not a number of seconds or 'none'"),
    (["-t", "0"], "'-t' / '--timeout': must be a number > 0 or 'none', got 0.0"),
    (["--connect-timeout", "0"], "'--connect-timeout': must be a number > 0 or None"),
    (["--deadline", "-1"],
     "'--deadline' / '-m' / '--max-time': must be a number > 0 or 'none', got -1.0"),
    (["--max-pending", "0"], "'--max-pending': must be an integer >= 1 or None, got 0"),
    (["-r", "-1"], "'-r' / '--retries' / '--retry': must be an integer >= 0, got -1"),
    (["--backoff", "-1"], "'--backoff': must be a number >= 0, got -1.0"),
    (["--retry-on", "5xx"], "'--retry-on': must be statuses such as"),
    (["--max-retry-wait", "-1"], "'--max-retry-wait': must be a number >= 0"),
    (["-X", "FETCH"], "'-X' / '--method': must be a registered HTTP method"),
    (["-H", "NoColon"], "'-H' / '--header': 'NoColon' is not of the form 'Name: value'"),
    (["-b", "nameonly"], "'-b' / '--cookie': 'nameonly' is not of the form 'NAME=VALUE'"),
    (["--param", "=v"], "'--param': '=v' is not of the form 'NAME=VALUE'"),
    (["-u", "user"], "'-u' / '--user': expected USER:PASSWORD, with a colon (batchfetch "
                     "does not ask for a password: give it after the colon, or use ~/.netrc)"),
    (["--json", "{bad"], "'--json': invalid JSON: "),
    (["-d", "a=1", "--json", "{}"], "'-d' / '--data': must be unset when json is set"),
    (["--max-redirects", "-1"], "'--max-redirects': must be an integer >= 0, got -1"),
    (["--ok-status", "2xx"], "'--ok-status': must be statuses such as"),
    (["--max-bytes", "10X"], "'--max-bytes': '10X' is not a size such as 1000, 512K"),
    (["--cacert", "/no/such/ca.pem"], "'--cacert': Path '/no/such/ca.pem' does not exist."),
    (["--cert", "/no/such/cert.pem"], "'--cert': File '/no/such/cert.pem' does not exist."),
    (["--input-format", "xml"], "'--input-format': 'xml' is not one of 'auto', 'text', 'jsonl'"),
    (["-f", "yaml"], "'-f' / '--format': 'yaml' is not one of"),
    (["-o", "/no/such/dir/rows.csv"], "'-o' / '--output': cannot write '/no/such/dir/rows.csv'"),
    (["/no/such/urls.txt"], "cannot read '/no/such/urls.txt': No such file or directory"),
    (["--demo", __file__], "--demo fetches its own list: give no INPUT"),
    (["--no-such-flag"], "No such option"),  # click 8.3 and 8.5 word the rest apart
    (["-o", "out.xlsx"], "Invalid value for '-o' / '--output': cannot tell a format from "
                         "'.xlsx': name the file .csv, .jsonl, .ndjson, .json, .txt "
                         "(table), .db (sqlite), .sqlite or .sqlite3, or give -f FORMAT"),
])
def test_bad_values_are_one_line_usage_errors(args, message):
    result = invoke(*args, input="")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(error_lines) == 1 and message in error_lines[0], result.stderr


def test_output_suffix_sets_the_format_and_an_unknown_one_needs_f(server, tmp_path):
    """Issue 13, item 16: -o out.xlsx silently wrote JSON Lines and exited 0."""
    refused = invoke(*FAST, "-o", tmp_path / "out.xlsx", input=server.url("/ok"))
    assert refused.exit_code == 2 and not (tmp_path / "out.xlsx").exists()
    plain = invoke(*FAST, "-o", tmp_path / "rows", input=server.url("/ok"))
    assert plain.exit_code == 0 and json.loads((tmp_path / "rows").read_text())["ok"]
    told = invoke(*FAST, "-o", tmp_path / "out.xlsx", "-f", "csv", input=server.url("/ok"))
    assert told.exit_code == 0
    assert (tmp_path / "out.xlsx").read_text().startswith("index,id,url,")


def test_key_needs_cert_and_insecure_contradicts_cacert(tmp_path):
    pem = write(tmp_path, "x.pem", "")
    assert "Error: --key needs --cert" in invoke("--key", pem, input="").stderr
    both = invoke("-k", "--cacert", pem, input="")
    assert both.exit_code == 2 and "--insecure and --cacert contradict" in both.stderr


# -- help, version and coverage of the options --------------------------------------------


def _long_options():
    """The long options --help shows (curl's flags that batchfetch refuses or needs not are
    hidden: the README's curl table lists them)."""
    return [opt for param in main.params if not getattr(param, "hidden", False)
            for opt in param.opts + param.secondary_opts if opt.startswith("--")] + ["--help"]


def test_help_groups_the_options_and_ends_with_examples():
    result = invoke("--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())  # whatever the wrapping
    assert text.startswith("Usage: batchfetch [OPTIONS] [INPUT]...")
    titles = ["Concurrency and timing:", "Retries:", "Request:", "TLS and proxies:",
              "Input and output:", "General:", "Examples:"]
    assert [text.index(title) for title in titles] == sorted(text.index(t) for t in titles)
    assert "[default: 16]" in text and "BATCHFETCH_<KEYWORD> sets its default" in text
    assert "default: 429,500,502-504" in text and "default: 10 connect, 30 read" in text
    assert "batchfetch --demo" in text and "141 output closed early" in text
    for option in _long_options():
        assert re.search(rf"{option}\b", text), option


def test_version_names_the_stack():
    result = invoke("--version")
    assert result.exit_code == 0
    assert re.match(r"batchfetch \d+\.\d+\.\d+ \(gevent [\d.]+, grequests [\d.]+, requests",
                    result.stdout)


def test_every_fetch_option_has_a_flag():
    keywords = {keyword_of(param) for param in main.params} - {None}
    assert keywords == set(FetchOptions.field_names())


def test_every_option_is_exercised_by_a_test():
    """Each option (by one of its names) is passed in a test other than this one."""
    sources = "".join(path.read_text() for path in (ROOT / "tests").glob("test_*.py"))
    this = sources[sources.index("def test_every_option_is_exercised_by_a_test"):]
    sources = sources.replace(this[:this.index("\ndef ", 1)], "")
    # The hidden ones are curl's flags of batchfetch.cli.curl's tables, which
    # tests/test_cli_habits.py runs one by one.
    missing = [param.opts[-1] for param in main.params if isinstance(param, click.Option)
               and not param.hidden
               and not any(f'"{name}"' in sources for name in param.opts + param.secondary_opts)]
    assert not missing


def test_every_help_option_is_in_the_readme():
    """README.rst documents every flag --help shows (the lead writes README.rst)."""
    readme = (ROOT / "README.rst").read_text(encoding="utf-8")
    missing = [opt for opt in _long_options() if not re.search(rf"{opt}(?![\w-])", readme)]
    assert not missing, f"README.rst lacks {', '.join(missing)}"


# -- subprocesses: a closed pipe and Ctrl-C ------------------------------------------------


def test_closed_stdout_ends_the_run_quietly_with_141(server, tmp_path, child_env):
    """``batchfetch urls.txt | head -n 1``: no traceback, no summary, exit 141 (as if
    SIGPIPE had ended it, like cat), long before the 2000 URLs are fetched."""
    urls = write(tmp_path, "urls.txt", f"{server.url('/delay/0.05')}\n" * 2000)
    proc = subprocess.Popen([sys.executable, "-m", "batchfetch", "-c", "4", urls],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env)
    try:
        assert json.loads(proc.stdout.readline())["status"] == 200
        proc.stdout.close()  # what head does after its first line
        assert proc.wait() == 141
        stderr = proc.stderr.read().decode()
    finally:
        proc.kill()
    assert stderr == ""
    assert server.hits["/delay/0.05"] < 500


def test_ctrl_c_exits_130_with_finished_rows_written(server, tmp_path, child_env):
    urls = write(tmp_path, "urls.txt", f"{server.url('/ok')}\n{server.url('/fault/hang')}\n" * 2)
    proc = subprocess.Popen([sys.executable, "-m", "batchfetch", "-f", "csv", urls],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]  # the header and the two /ok rows
        proc.send_signal(signal.SIGINT)
        assert proc.wait() == 130
        lines += proc.stdout.read().splitlines()
        stderr = proc.stderr.read().decode()
    finally:
        proc.kill()
    assert "Traceback" not in stderr and "Aborted" not in stderr and "KeyboardInterrupt" \
        not in stderr
    # Issue 17, item 5: what it says it counts: the two hanging requests were in flight.
    assert "interrupted: 2 rows written, 2 requests in flight cancelled, 0 inputs not " \
           "started" in stderr
    rows = list(csv.DictReader(io.StringIO(b"".join(lines).decode())))
    assert [row["status"] for row in rows] == ["200", "200"]
