"""Issue 17, the shell: what curl and wget users type first works, or is refused in one line
that names batchfetch's way. Through the real command (CliRunner, or a subprocess where the
terminal or signals matter), against the loopback server.
"""
import json
import os
import re
import signal
import subprocess
import sys

import gevent.select
import pytest
from click.testing import CliRunner

from batchfetch.cli import main
from batchfetch.cli.curl import ALREADY_DONE, REFUSED

FAST = ["-r", "0"]


def invoke(*args, input=None, env=None):
    return CliRunner().invoke(main, [str(arg) for arg in args], input=input, env=env,
                              prog_name="batchfetch")


def rows_of(result):
    return [json.loads(line) for line in result.stdout.splitlines()]


def echoed(row):
    return json.loads(row["body"])


# -- URLs and files as arguments ------------------------------------------------------------


def test_urls_as_arguments_and_files_make_one_sequence(server, tmp_path):
    first = tmp_path / "a.txt"
    first.write_text(f"{server.url('/ok')}\nnot a url\n")
    second = tmp_path / "b.txt"
    second.write_text(f"# comment\n{server.url('/status/404')}\n")
    result = invoke(*FAST, server.url("/json"), first, second, server.url("/html"))
    assert result.exit_code == 1, result.output
    rows = sorted(rows_of(result), key=lambda row: row["index"])
    assert [(row["index"], row["url"]) for row in rows] == [
        (0, server.url("/json")), (1, server.url("/ok")), (2, "not a url"),
        (3, server.url("/status/404")), (4, server.url("/html"))]
    assert [row["status"] for row in rows] == [200, 200, None, 404, 200]
    assert rows[2]["message"].startswith(f"line 2 of {first}: ")


def test_stdin_among_the_arguments(server):
    result = invoke(*FAST, server.url("/ok"), "-", input=f"{server.url('/json')}\n")
    assert result.exit_code == 0, result.output
    assert sorted(row["url"] for row in rows_of(result)) == [server.url("/json"),
                                                            server.url("/ok")]


def test_a_bad_url_argument_is_a_row_naming_the_argument(server):
    result = invoke(*FAST, server.url("/ok"), "http://[::1/x")
    assert result.exit_code == 1
    bad = [row for row in rows_of(result) if not row["ok"]]
    assert len(bad) == 1 and bad[0]["message"].startswith("argument 2: "), bad


def test_a_missing_file_that_looks_like_a_url_says_to_add_the_scheme():
    result = invoke("example.com/page")
    assert result.exit_code == 2
    assert "cannot read 'example.com/page': No such file or directory; to fetch it, give the " \
           "URL with its scheme: 'http://example.com/page' (curl assumes http://) or " \
           "'https://...'" in result.stderr
    for name in ("no-such-list.txt", "nosuchfile.csv"):  # a file name, not a host
        plain = invoke(name)
        assert plain.exit_code == 2 and f"cannot read {name!r}: No such file or directory\n" \
            in plain.stderr, plain.stderr
    ip = invoke("127.0.0.1:8123/ok")
    assert "'http://127.0.0.1:8123/ok' (curl assumes http://)" in ip.stderr


def test_stdin_twice_and_stdin_with_a_body_from_stdin_are_usage_errors(server):
    assert "'-' (standard input) is given twice" in invoke("-", "-", input="").stderr
    for flag in ("-d", "--data-binary"):
        result = invoke(flag, "@-", server.url("/ok"), "-", input="x")
        assert result.exit_code == 2 and "standard input, which is an input too" in \
            result.stderr, flag
    # With the URLs as arguments, -d @- may read standard input.
    result = invoke("--body", "--data-urlencode", "v@-", server.url("/echo"), input="a b")
    assert result.exit_code == 0, result.output
    assert echoed(rows_of(result)[0])["body"] == "v=a%20b"


def test_the_output_file_cannot_be_one_of_the_inputs(server, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text(server.url("/ok") + "\n")
    result = invoke(server.url("/ok"), urls, "-o", urls)
    assert result.exit_code == 2 and "is an input file" in result.stderr
    assert urls.read_text() == server.url("/ok") + "\n"


def test_resume_across_several_inputs(server, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{server.url('/ok')}\n{server.url('/json')}\n")
    out = tmp_path / "rows.jsonl"
    first = invoke(*FAST, server.url("/html"), urls, "-o", out)
    assert first.exit_code == 0, first.output
    again = invoke(*FAST, server.url("/html"), urls, "-o", out, "--resume")
    assert again.exit_code == 0 and "3 rows" in again.stderr, again.stderr
    other = invoke(*FAST, server.url("/status/404"), urls, "-o", out, "--resume")
    assert other.exit_code == 2 and "(argument 1) is" in other.stderr, other.stderr


# -- curl's flags ------------------------------------------------------------------------------


def test_curl_aliases_mean_what_they_mean_in_curl(server):
    result = invoke("-s", "-L", "--retry", "0", "-m", "5", "-I", server.url("/redirect/1"))
    assert result.exit_code == 0, result.output
    (row,) = rows_of(result)
    assert (row["method"], row["status"], row["final_url"]) == ("HEAD", 200,
                                                              server.url("/redirect/0"))
    assert result.stderr == ""  # -s is -q
    slow = invoke("-m", "0.3", "--retry", "0", server.url("/delay/3"))
    assert rows_of(slow)[0]["error"] == "deadline"
    kept = invoke(*FAST, "--no-redirects", server.url("/redirect/1"))
    assert rows_of(kept)[0]["status"] == 302


def test_x_is_the_proxy(server):
    invoke(*FAST, "-x", server.base_url, "http://batchfetch.invalid/ok")
    assert server.hits["http://batchfetch.invalid/ok"] == 1  # absolute-form: a proxy request


def test_data_binary_keeps_the_bytes_and_data_strips_line_ends(server, tmp_path):
    body = tmp_path / "body.bin"
    body.write_bytes(b"a=1\r\nb=2\n\x00")
    binary = invoke(*FAST, "--body", "--data-binary", f"@{body}", server.url("/echo"))
    form = invoke(*FAST, "--body", "-d", f"@{body}", server.url("/echo"))
    assert echoed(rows_of(binary)[0])["body"] == "a=1\r\nb=2\n\x00"
    assert echoed(rows_of(form)[0])["body"] == "a=1b=2\x00"
    assert echoed(rows_of(binary)[0])["method"] == "POST"


def test_data_urlencode_reads_its_forms_as_curl_does(server, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("x y\n")
    result = invoke(*FAST, "--body", "-d", "a=1", "--data-urlencode", "q=a b&c",
                    "--data-urlencode", "=é", "--data-urlencode", f"f@{text}",
                    server.url("/echo"))
    assert echoed(rows_of(result)[0])["body"] == "a=1&q=a%20b%26c&%C3%A9&f=x%20y%0A"


def test_head_with_a_body_is_a_usage_error(server):
    for extra in (["-d", "a=1"], ["-X", "POST"], ["--json", "{}"]):
        result = invoke("-I", *extra, server.url("/ok"))
        assert result.exit_code == 2 and "-I sends HEAD requests" in result.stderr, extra


@pytest.mark.parametrize("decls", list(ALREADY_DONE))
def test_curl_flags_for_what_batchfetch_does_anyway_change_nothing(server, decls):
    for flag in decls:
        result = invoke(*FAST, flag, server.url("/ok"), server.url("/status/404"))
        assert result.exit_code == 1, (flag, result.output)
        assert sorted(row["status"] for row in rows_of(result)) == [200, 404]


@pytest.mark.parametrize("decls", list(REFUSED))
def test_curl_flags_batchfetch_has_no_twin_of_name_its_way(server, decls):
    takes_value, instead = REFUSED[decls]
    for flag in decls:
        result = invoke(flag, *(["x"] if takes_value else []), server.url("/ok"))
        assert result.exit_code == 2, flag
        lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert lines == [f"Error: {'/'.join(decls)} is curl's, and batchfetch has no such "
                         f"option: {instead}"]
        assert "Traceback" not in result.output


def test_a_curl_cluster_after_f_gets_a_hint(server):
    for cluster in ("-fsSL", "-sSfL", "-fL"):
        result = invoke(cluster, server.url("/ok"))
        assert result.exit_code == 2, cluster
        assert "looks like curl's flags, but -f is --format here" in result.stderr, cluster
    # -sSL is fine as it is: quiet, errors shown, redirects followed.
    assert invoke("-sSL", server.url("/ok")).exit_code == 0


# -- messages that point at the cause ---------------------------------------------------------


def test_a_bad_variable_is_named_not_its_flag(server):
    result = invoke(server.url("/ok"), env={"BATCHFETCH_CONCURRENCY": "lots"})
    assert result.exit_code == 2
    assert "Invalid value for the variable BATCHFETCH_CONCURRENCY: 'lots' is not a valid " \
           "integer" in result.stderr
    refused = invoke(server.url("/ok"), env={"BATCHFETCH_CONCURRENCY": "0"})
    assert refused.exit_code == 2
    assert "Invalid value for the variable BATCHFETCH_CONCURRENCY" in refused.stderr
    flag = invoke("-c", "0", server.url("/ok"))
    assert "Invalid value for '-c' / '--concurrency'" in flag.stderr


def test_plain_urls_in_a_jsonl_file_get_a_hint(server, tmp_path):
    specs = tmp_path / "urls.jsonl"
    specs.write_text(server.url("/ok") + "\n")
    result = invoke(specs)
    assert result.exit_code == 1
    assert rows_of(result)[0]["message"] == (
        f"line 1 of {specs}: a plain URL where JSON Lines specs were expected: give "
        "--input-format text to read the file as URLs")
    assert invoke("--input-format", "text", specs).exit_code == 0


def test_an_empty_input_says_so(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n\n")
    result = invoke(empty)
    assert result.exit_code == 0 and "the input held no URLs" in result.stderr


# -- the loopback server from the shell -------------------------------------------------------


def test_the_test_server_runs_from_the_shell_until_ctrl_c(tmp_path):
    server = subprocess.Popen([sys.executable, "-m", "batchfetch.testing", "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = server.stdout.readline()
        assert first.startswith("batchfetch test server at http://127.0.0.1:"), first
        base = first.split()[4]
        routes = [server.stdout.readline() for _ in range(3)]
        assert routes[1] == "routes:\n" and "/ok" in routes[2]
        fetched = subprocess.run([sys.executable, "-m", "batchfetch", "-q", base + "/ok",
                                  base + "/status/503", "-r", "0"],
                                 capture_output=True, text=True, env={**os.environ})
        statuses = sorted(json.loads(line)["status"] for line in fetched.stdout.splitlines())
        assert (fetched.returncode, statuses) == (1, [200, 503])
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0 and "stopped" in err and "Traceback" not in err


def test_the_test_server_refuses_a_busy_port_in_one_line():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "batchfetch.testing", "--port",
                                 str(port)], capture_output=True, text=True)
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


# -- the terminal table -------------------------------------------------------------------------


def _table_on_a_terminal(args, columns):
    """The command's stdout as a terminal of ``columns`` columns shows it."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    try:
        process = subprocess.Popen([sys.executable, "-m", "batchfetch", "-q", "-r", "0",
                                    *args], stdout=follower, stderr=subprocess.PIPE)
        os.close(follower)
        output = b""
        while True:
            # gevent's select: the loopback server answers from this process meanwhile
            ready, _, _ = gevent.select.select([leader], [], [], 0.1)
            if ready:
                try:
                    output += os.read(leader, 65536)
                    continue
                except OSError:  # the other end closed: EIO on Linux
                    break
            if process.poll() is not None:
                break
    finally:
        os.close(leader)
    return output.decode().replace("\r\n", "\n").splitlines()


def test_the_table_uses_the_terminal_width_and_shows_why_rows_failed(server):
    long_url = server.url("/ok?" + "q" * 100)
    args = [long_url, server.url("/status/404"), "http://127.0.0.1:1/refused"]
    wide = _table_on_a_terminal(args, 240)
    assert wide[0].split() == ["#", "status", "error", "ms", "bytes", "tries", "url",
                               "message"]
    assert long_url in wide[1]  # whole on a wide terminal
    assert wide[3].rstrip().endswith("[Errno 111] Connection refused"), wide[3]
    assert all(len(line) <= 240 for line in wide)
    narrow = _table_on_a_terminal(args, 100)
    assert all(len(line) <= 100 for line in narrow), narrow
    assert "..." in narrow[1] and long_url not in narrow[1]
    assert "connect" in narrow[3] and "Failed to establish" in narrow[3]


def test_a_table_written_to_a_file_is_whole(server, tmp_path):
    long_url = server.url("/ok?" + "q" * 100)
    out = tmp_path / "rows.txt"
    assert invoke(*FAST, long_url, server.url("/status/503"), "-o", out).exit_code == 1
    lines = out.read_text().splitlines()
    assert long_url in lines[1] and lines[2].rstrip().endswith("503 Service Unavailable")


# -- response headers in rows ----------------------------------------------------------------


def test_i_puts_the_response_headers_in_each_row(server):
    result = invoke(*FAST, "-i", server.url("/cookies/set?a=1&b=2"))
    (row,) = rows_of(result)
    assert row["headers"]["Set-Cookie"] == ["a=1; Path=/", "b=2; Path=/"]
    assert list(row)[-1] == "headers"


def test_header_columns_in_csv_and_a_resumed_file(server, tmp_path):
    out = tmp_path / "rows.csv"
    urls = [server.url("/cookies/set?a=1"), server.url("/ok")]
    first = invoke(*FAST, "--header-column", "Set-Cookie", "-i", urls[0], "-o", out)
    assert first.exit_code == 0, first.output
    again = invoke(*FAST, "--header-column", "Set-Cookie", "-i", *urls, "-o", out, "--resume")
    assert again.exit_code == 0, again.output
    import csv

    with open(out, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["set_cookie"] for row in rows] == ["a=1; Path=/", ""]
    assert json.loads(rows[1]["headers"])["Content-Length"] == "3"


def test_D_names_the_way_to_get_headers(server):
    result = invoke("-D", "headers.txt", server.url("/ok"))
    assert result.exit_code == 2 and "-i (--response-headers) adds each response's headers" \
        in result.stderr


# -- the progress bar --------------------------------------------------------------------------


def test_the_bar_redraws_while_no_row_completes(server):
    """One URL answers at once, the other hangs until its 2 s deadline: meanwhile the bar
    is drawn again (counts, not a stopwatch: every half second while nothing completes)."""
    result = invoke("--progress", "-r", "0", "--deadline", "2", server.url("/ok"),
                    server.url("/fault/hang"))
    assert result.exit_code == 1
    draws = result.stderr.split("\r")
    waiting = [draw for draw in draws if " 1/2 " in draw]
    assert len(waiting) >= 3, draws  # the row's own draw, then redraws while it hangs
    assert any("in flight 1" in draw for draw in waiting), waiting
    assert any(" 2/2 " in draw and "in flight 0" in draw for draw in draws)


def test_the_bar_redraws_while_the_output_waits_for_its_reader(server, tmp_path, child_env):
    """Nobody reads stdout: once the pipe is full the rows wait, and the bar goes on being
    drawn with the same count (three draws of it, at most half a second apart)."""
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{server.url('/ok')}\n" * 3000)
    process = subprocess.Popen([sys.executable, "-m", "batchfetch", "--progress", "-c", "8",
                                urls], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=child_env)
    seen, stalled = b"", None
    try:
        while stalled is None:
            ready, _, _ = gevent.select.select([process.stderr], [], [], 0.1)
            if ready:
                chunk = os.read(process.stderr.fileno(), 65536)
                assert chunk, seen[-2000:]  # the process ended with stdout never read
                seen += chunk
                counts = re.findall(rb" (\d+)/3000 ", seen)
                if len(counts) >= 3 and len(set(counts[-3:])) == 1 and \
                        counts[-1] != b"3000":
                    stalled = int(counts[-1])
    finally:
        process.kill()
        process.wait()
    assert 0 < stalled < 3000


# -- -F: multipart, with its API and JSON Lines twins ----------------------------------------


def test_form_parts_go_as_curl_sends_them(server, tmp_path):
    doc = tmp_path / "notes.txt"
    doc.write_bytes(b"line one\r\nline two\x00")
    result = invoke(*FAST, "--body", "-F", "note=hi there", "-F", f"doc=@{doc};type=text/plain",
                    "-F", f"text=<{doc}", server.url("/echo"))
    assert result.exit_code == 0, result.output
    seen = echoed(rows_of(result)[0])
    assert seen["method"] == "POST"
    assert seen["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")
    body = seen["body"]
    assert 'Content-Disposition: form-data; name="note"\r\n\r\nhi there\r\n' in body
    assert ('Content-Disposition: form-data; name="doc"; filename="notes.txt"\r\n'
            "Content-Type: text/plain\r\n\r\nline one\r\nline two\x00\r\n") in body
    assert 'name="text"\r\n\r\nline one\r\nline two\x00\r\n' in body


def test_form_usage_errors_are_one_line(server, tmp_path):
    for args, problem in ((["-F", "a=1", "-d", "b=2"], "-F sends a multipart body"),
                          (["-F", "novalue"], "'novalue' is not NAME=VALUE or NAME=@FILE"),
                          (["-F", "a=1", "-F", "a=2"], "the part 'a' is given twice"),
                          (["-F", f"a=@{tmp_path / 'missing'}"], "cannot read"),
                          (["-F", "a=@x;charset=utf-8"], "batchfetch reads type= and filename=")):
        result = invoke(*args, server.url("/echo"))
        assert result.exit_code == 2, args
        assert problem in result.stderr and "Traceback" not in result.output, result.stderr


def test_files_in_json_lines_specs_and_the_api(server, tmp_path, monkeypatch):
    from batchfetch import FetchOptions, OptionError, fetch_all

    monkeypatch.chdir(tmp_path)  # a spec's files are read below the working directory
    (tmp_path / "a.csv").write_text("x,y\n")
    specs = tmp_path / "calls.jsonl"
    specs.write_text(json.dumps({"url": server.url("/echo"), "method": "POST", "id": 1,
                                 "files": {"doc": {"path": "a.csv", "filename": "up.csv"}}})
                     + "\n" + json.dumps({"url": server.url("/echo"), "method": "POST",
                                          "files": {"doc": {"path": "no"}}})
                     + "\n")
    rows = sorted(rows_of(invoke(*FAST, "--body", specs)), key=lambda row: row["index"])
    assert 'name="doc"; filename="up.csv"\r\n\r\nx,y\n' in echoed(rows[0])["body"]
    assert rows[1]["error"] == "invalid_request"
    assert rows[1]["message"].startswith(f"line 2 of {specs}: 'files' part 'doc': cannot read")
    table = fetch_all([server.url("/echo")], files={"n": "1"}, method="POST", keep_body=True)
    assert 'name="n"\r\n\r\n1\r\n' in table[0].json()["body"]
    with pytest.raises(OptionError, match="cannot read"):
        FetchOptions(files={"doc": {"path": str(tmp_path / "no")}})
    with pytest.raises(OptionError, match="one body only"):
        FetchOptions(files={"n": "1"}, json={})


# -- what a review of the above found ---------------------------------------------------------


def test_an_options_file_part_is_read_once_for_every_request(server, tmp_path):
    from batchfetch import FetchOptions, fetch_all

    doc = tmp_path / "doc.txt"
    doc.write_text("first")
    options = FetchOptions(files={"doc": {"path": str(doc)}}, method="POST", keep_body=True)
    doc.write_text("changed")  # read when the options were made, not per request
    table = fetch_all([server.url("/echo")] * 3, options)
    assert all("\r\n\r\nfirst\r\n" in row.json()["body"] for row in table)
    assert "first" not in repr(options) and "'doc': '***'" in repr(options)


def test_a_spec_reads_file_parts_only_below_the_working_directory(server, tmp_path,
                                                                    monkeypatch):
    from batchfetch import fetch_all

    monkeypatch.chdir(tmp_path)
    (tmp_path / "here.txt").write_text("ok")
    (tmp_path / "link").symlink_to("/etc/hostname")
    items = [{"url": server.url("/echo"), "method": "POST", "files": {"k": {"path": path}}}
             for path in ("here.txt", "/etc/hostname", "../outside.txt", "link", "/dev/zero")]
    rows = fetch_all(items, retries=0)
    assert [row.error for row in rows] == ["", *["invalid_request"] * 4]
    assert all("must be a regular file in the working directory" in row.message
               for row in rows[1:])


def test_form_parts_and_json_from_standard_input(server, tmp_path):
    result = invoke(*FAST, "--body", "-F", "note=<-", server.url("/echo"), input="from\x00in")
    assert 'name="note"\r\n\r\nfrom\x00in\r\n' in echoed(rows_of(result)[0])["body"]
    body = tmp_path / "body.json"
    body.write_text('{"n": 2}')
    result = invoke(*FAST, "--body", "--json", f"@{body}", server.url("/echo"))
    assert echoed(rows_of(result)[0])["json"] == {"n": 2}
    for args, problem in ((["-F", "note=<-"], "standard input, which is an input too"),
                          (["--json", "@-"], "standard input, which is an input too"),
                          (["-F", "f=@-", server.url("/echo")], "f=<- sends its text"),
                          (["-I", "-F", "a=1", server.url("/echo")], "-I sends HEAD")):
        result = invoke(*args, input=server.url("/echo"))
        assert result.exit_code == 2 and problem in result.stderr, (args, result.stderr)


def test_many_input_files_hold_no_descriptors_until_their_turn(server, tmp_path, child_env):
    import resource

    names = []
    for n in range(150):
        path = tmp_path / f"part{n:03}.txt"
        path.write_text(server.url(f"/ok?n={n}") + "\n")
        names.append(str(path))

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))

    result = subprocess.run([sys.executable, "-m", "batchfetch", "-q", "-c", "4", *names],
                            capture_output=True, text=True, env=child_env,
                            preexec_fn=low_limit)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.splitlines()) == 150


def test_a_url_argument_password_stays_masked_in_messages(server, tmp_path):
    out = tmp_path / "rows.jsonl"
    assert invoke(*FAST, server.url("/ok"), server.url("/json"), "-o", out).exit_code == 0
    secret = server.url("/ok").replace("http://", "http://ann:s3cret@")
    result = invoke(*FAST, secret, "-o", out, "--resume")
    assert result.exit_code == 2 and "s3cret" not in result.output and "***" in result.output


def test_resumed_rows_keep_their_header_columns(server, tmp_path):
    from batchfetch import fetch_all, iter_fetch

    rows_file = tmp_path / "rows.jsonl"
    urls = [server.url("/ok"), server.url("/json")]
    first = list(iter_fetch(urls[:1], resume=rows_file, header_columns=["Content-Length"]))
    assert len(first) == 1  # as if the run had stopped after the first input
    table = fetch_all(urls, resume=rows_file, header_columns=["Content-Length"])
    assert [row.headers for row in table] == [{"Content-Length": "3"},
                                              {"Content-Length": str(table[1].size)}]


def test_socks_proxies_without_pysocks_are_one_usage_line(server):
    try:
        import socks  # noqa: F401
        pytest.skip("PySocks is installed here")
    except ImportError:
        pass
    result = invoke("-x", "socks5://127.0.0.1:1", server.url("/ok"))
    assert result.exit_code == 2 and "needs PySocks: pip install 'requests[socks]'" \
        in result.stderr


def test_parallel_flags_mean_what_batchfetch_does(server):
    result = invoke(*FAST, "--parallel", "--parallel-max", "3", server.url("/ok"))
    assert result.exit_code == 0, result.output
    assert invoke("--parallel-max", "0", server.url("/ok")).exit_code == 2


def test_resume_refuses_a_json_lines_file_written_with_other_columns(server, tmp_path):
    out = tmp_path / "rows.jsonl"
    urls = [server.url("/ok"), server.url("/json")]
    assert invoke(*FAST, "-i", "--header-column", "Content-Length", urls[0], "-o",
                  out).exit_code == 0
    for other in (["--body"], [], ["-i"], ["-i", "--header-column", "X-Foo"]):
        result = invoke(*FAST, *other, *urls, "-o", out, "--resume")
        assert result.exit_code == 2, other
        assert "use the same --body, -i and --header-column" in result.stderr, result.stderr
    same = invoke(*FAST, "-i", "--header-column", "Content-Length", *urls, "-o", out,
                  "--resume")
    assert same.exit_code == 0 and len(out.read_text().splitlines()) == 2
