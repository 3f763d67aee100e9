"""Long runs: Ctrl-C, SIGTERM and kill -9, then --resume (and --retry-failed); --save across
resumed runs; the progress bar on a terminal and not on a pipe; -v logging.

Signal tests run the command as a subprocess against the loopback server in this process,
waiting with gevent (the server must keep serving meanwhile); resumed runs run in-process.
"""
import csv
import io
import json
import os
import pty
import re
import select
import signal
import subprocess

import gevent
import gevent.socket
import pytest
from click.testing import CliRunner

from batchfetch.cli import main
from command_process import bytes_in_pipe, start, url_file, wait_for

FAST = ["-r", "0"]



def invoke(*args, input=None):
    return CliRunner().invoke(main, [str(arg) for arg in args], input=input,
                              prog_name="batchfetch")


def rows_in(path):
    """Every row of a csv or jsonl file; fails if any line does not parse or a CSV has a
    second header."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        assert all(row["index"] != "index" for row in rows), "a second CSV header"
        for row in rows:
            row["index"], row["ok"] = int(row["index"]), row["ok"] == "true"
        return rows
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def assert_each_input_once(path, urls):
    rows = rows_in(path)
    assert sorted(row["index"] for row in rows) == list(range(len(urls)))
    assert all(row["url"] == urls[row["index"]] for row in rows)
    return rows


def pipe_is_full(pid, fd):
    """Whether the pipe on file descriptor ``fd`` of process ``pid`` has no room left: the
    pipe is opened again through /proc (Linux) and polled for writing. True whether the
    process then blocks in write() or waits for room with gevent."""
    writer = os.open(f"/proc/{pid}/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK)
    try:
        poller = select.poll()
        poller.register(writer, select.POLLOUT)
        return not poller.poll(0)
    finally:
        os.close(writer)


def complete_lines(path):
    return path.read_bytes().count(b"\n") if path.exists() else 0


# -- interruption, then --resume -------------------------------------------------------------


@pytest.mark.parametrize("signum, name, code", [
    (signal.SIGINT, "rows.jsonl", 130), (signal.SIGINT, "rows.csv", 130),
    (signal.SIGTERM, "rows.jsonl", 130), (signal.SIGKILL, "rows.jsonl", -9),
    (signal.SIGKILL, "rows.csv", -9)], ids=lambda value: getattr(value, "name", None))
def test_a_signal_mid_run_then_resume_covers_every_input_once(server, held_server, tmp_path,
                                                              child_env, signum, name, code):
    """The last input is held unanswered until the resume, so the signal always comes
    mid-run (40 quick inputs could all be done before a late signal landed)."""
    urls = [server.url(f"/delay/0.1?n={n}") for n in range(39)] + [held_server.url("/last")]
    output = tmp_path / name
    proc = start(["-c", "4", *FAST, "-o", output, url_file(tmp_path, urls)], child_env)
    try:
        wait_for(lambda: complete_lines(output) >= 8)
        proc.send_signal(signum)
        assert proc.wait() == code
        stderr = proc.stderr.read().decode()
    finally:
        proc.kill()
    if signum != signal.SIGKILL:
        assert "Traceback" not in stderr and "Aborted" not in stderr
        written = len(rows_in(output))
        assert f"interrupted: {written} rows written" in stderr and 7 <= written < 40
        left = re.search(r"interrupted: \d+ rows written, (\d+) requests in flight cancelled, "
                         r"(\d+) inputs not started; add --resume to fetch the rest$",
                         stderr.rstrip())
        assert left, stderr
        in_flight, not_started = map(int, left.groups())
        assert in_flight <= 4 and written + in_flight + not_started == 40
    held_server.released.set()
    resumed = invoke("-c", "4", *FAST, "--resume", "-o", output, tmp_path / "urls.txt")
    assert resumed.exit_code == 0, resumed.output
    assert "rows already in" in resumed.stderr
    assert_each_input_once(output, urls)
    assert server.hits["/delay/0.1"] <= 39 + 8  # only the inputs without a row, again


def test_a_second_signal_exits_at_once_even_while_output_blocks(server, tmp_path, child_env):
    """The first Ctrl-C stops the run; writing the rows then blocks on a full stdout pipe
    nobody reads. A second Ctrl-C must still end the process at once, with 130."""
    urls = [server.url(f"/bytes/3000?n={n}") for n in range(100)] + [server.url("/fault/hang")]
    proc = start([*FAST, "-f", "json", "--body", url_file(tmp_path, urls)], child_env)
    try:
        # At concurrency 16 the last request goes out once 85 rows are done: 85 rows of
        # 3 KB are far more than a pipe holds (no sleep for "the last rows to come back").
        wait_for(lambda: server.hits["/bytes/3000"] == 100 and server.hits["/fault/hang"] == 1)
        proc.send_signal(signal.SIGINT)
        # Then it writes the rows until the pipe nobody reads is full, and must wait (an
        # event, not a 0.5 s sleep after which it had to be stuck).
        wait_for(lambda: proc.poll() is not None or pipe_is_full(proc.pid, 1))
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        assert proc.wait() == 130
    finally:
        proc.kill()
    assert "interrupted again: exiting now" in proc.stderr.read().decode()


@pytest.mark.parametrize("name, flags", [("rows.jsonl", []), ("rows.csv", ["--body"])])
def test_resume_drops_a_cut_last_line_and_fetches_that_input_again(server, tmp_path, name,
                                                                     flags):
    """What kill -9 leaves: a last row cut mid-line (in CSV with --body, inside a quoted
    body that holds a newline, which a line-based reader would take as complete)."""
    urls = [server.url(f"/ok?n={n}") for n in range(5)]
    output, inputs = tmp_path / name, url_file(tmp_path, urls)
    assert invoke(*FAST, *flags, "-o", output, inputs).exit_code == 0
    last = rows_in(output)[-1]["index"]
    data = output.read_bytes()
    cut = data.rindex(b"ok\n") + 3 if flags else len(data) - 20  # just after "ok\n"
    output.write_bytes(data[:cut])
    resumed = invoke(*FAST, *flags, "--resume", "-o", output, inputs)
    assert resumed.exit_code == 0, resumed.output
    assert "its cut last line is dropped" in resumed.stderr
    rows = assert_each_input_once(output, urls)
    assert rows[-1]["index"] == last and server.hits["/ok"] == 6


def test_resume_keeps_each_input_index_and_line_number(server, tmp_path):
    """Skipped inputs do not renumber the rest: rows keep their input's index, and a bad
    line's message its line number."""
    inputs = tmp_path / "urls.txt"
    inputs.write_text(f"# header\n{server.url('/ok?a')}\n\nnot a url\n{server.url('/ok?b')}\n"
                      f"{server.url('/status/404')}\n")
    output = tmp_path / "rows.jsonl"
    assert invoke(*FAST, "-o", output, inputs).exit_code == 1
    lines = output.read_text().splitlines()
    first = {json.loads(line)["index"]: line for line in lines}
    output.write_text(first[0] + "\n" + first[2] + "\n")  # as if 1 and 3 were in flight
    resumed = invoke(*FAST, "--resume", "-o", output, inputs)
    assert resumed.exit_code == 1  # the 404 row
    rows = {row["index"]: row for row in rows_in(output)}
    assert sorted(rows) == [0, 1, 2, 3]
    assert (rows[1]["url"], rows[1]["message"]) == ("not a url", json.loads(first[1])["message"])
    assert rows[1]["message"].startswith(f"line 4 of {inputs}: no scheme")
    assert rows[3]["url"] == server.url("/status/404") and rows[3]["status"] == 404


def test_resume_of_a_missing_file_starts_it_and_csv_gets_one_header(server, tmp_path):
    urls = [server.url(f"/ok?n={n}") for n in range(3)]
    output, inputs = tmp_path / "rows.csv", url_file(tmp_path, urls)
    assert invoke(*FAST, "--resume", "-o", output, inputs).exit_code == 0
    assert invoke(*FAST, "--resume", "-o", output, inputs).exit_code == 0  # nothing left
    assert output.read_text().count("index,id,url") == 1
    assert_each_input_once(output, urls)
    assert server.hits["/ok"] == 3


def test_retry_failed_fetches_failed_rows_again_and_replaces_them(server, tmp_path):
    urls = [server.url("/ok"), server.url("/flaky/a?fail=1"), server.url("/flaky/b?fail=1")]
    output, inputs = tmp_path / "rows.jsonl", url_file(tmp_path, urls)
    assert invoke(*FAST, "-o", output, inputs).exit_code == 1
    ok_line = next(line for line in output.read_text().splitlines() if '"ok": true' in line)
    kept = invoke(*FAST, "--resume", "-o", output, inputs)  # failed rows count as done
    assert kept.exit_code == 1 and "2 failed (kept; --retry-failed" in kept.stderr
    assert server.hits["/flaky/a"] == 1
    retried = invoke(*FAST, "--resume", "--retry-failed", "-o", output, inputs)
    assert retried.exit_code == 0, retried.output
    rows = assert_each_input_once(output, urls)
    assert all(row["ok"] for row in rows) and server.hits["/flaky/a"] == 2
    assert output.read_text().splitlines()[0] == ok_line  # kept rows are kept as they were
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file


def test_resume_with_another_input_exits_2_and_leaves_the_file_alone(server, tmp_path):
    urls = [server.url(f"/ok?n={n}") for n in range(3)]
    output = tmp_path / "rows.jsonl"
    assert invoke(*FAST, "-o", output, url_file(tmp_path, urls)).exit_code == 0
    output.write_text("".join(line.replace('"ok": true', '"ok": false') + "\n"
                              for line in output.read_text().splitlines()))
    before = output.read_bytes()
    other = url_file(tmp_path, [urls[0], server.url("/ok?other")] + urls[2:], "other.txt")
    result = invoke(*FAST, "--resume", "--retry-failed", "-o", output, other)
    assert result.exit_code == 2
    assert (f"Error: {output} was written for another input: its row for input 1 has the url "
            f"'{urls[1]}', but input 1 (line 2 of {other}) is '{server.url('/ok?other')}'"
            ) in result.stderr
    shorter = invoke(*FAST, "--resume", "-o", output, url_file(tmp_path, urls[:2], "two.txt"))
    assert shorter.exit_code == 2
    assert "it has a row for input 2, but" in shorter.stderr and "has only 2 inputs" in \
        shorter.stderr
    assert output.read_bytes() == before and server.hits["/ok"] == 3


def test_resume_from_a_pipe_checks_before_fetching_too(server, tmp_path, child_env):
    """A pipe cannot be read ahead: the inputs without a row wait until every recorded row
    has been checked, so another input still fetches nothing and leaves the file alone."""
    urls = [server.url(f"/ok?n={n}") for n in range(4)]
    output = tmp_path / "rows.jsonl"
    assert invoke(*FAST, "-o", output, url_file(tmp_path, urls)).exit_code == 0
    lines = output.read_text().splitlines(keepends=True)
    kept = [line for line in lines if json.loads(line)["index"] != 1]
    output.write_text("".join(kept).replace('"ok": true', '"ok": false'))  # 1 is "in flight"
    before = output.read_bytes()
    proc = start(["--resume", "--retry-failed", *FAST, "-o", output], child_env,
                 stdin=subprocess.PIPE)
    try:
        proc.stdin.write("".join(f"{url}\n" for url in urls[:3]).encode())
        proc.stdin.flush()
        # Time to fetch input 1, were it not held back: counted from when the child has
        # read the three lines, not from its start (a slow start used the 0.5 s up). A wait
        # for something that must not happen can only be a window; a short one can miss
        # the bug but never fail a correct run.
        wait_for(lambda: bytes_in_pipe(proc.stdin) == 0)
        gevent.sleep(0.5)
        _, stderr = proc.communicate(f"{server.url('/ok?other')}\n".encode())
    finally:
        proc.kill()
    assert proc.returncode == 2 and "its row for input 3 has the url" in stderr.decode()
    assert output.read_bytes() == before and server.hits["/ok"] == 4
    same = start(["--resume", "--retry-failed", *FAST, "-o", output], child_env,
                 stdin=subprocess.PIPE)
    try:
        same.communicate("".join(f"{url}\n" for url in urls).encode())
    finally:
        same.kill()
    assert same.returncode == 0
    assert all(row["ok"] for row in assert_each_input_once(output, urls))


def test_resume_checks_jsonl_specs_by_their_url(server, tmp_path):
    specs = [{"id": 1, "url": server.url("/ok")}, {"id": 2, "url": server.url("/echo"),
                                                   "method": "POST", "json": {"n": 2}},
             '{"broken', {"id": 4, "url": "nope"}]
    inputs = tmp_path / "calls.jsonl"
    inputs.write_text("".join((s if isinstance(s, str) else json.dumps(s)) + "\n"
                              for s in specs))
    output = tmp_path / "rows.csv"
    assert invoke(*FAST, "-o", output, inputs).exit_code == 1
    resumed = invoke(*FAST, "--resume", "-o", output, inputs)
    assert resumed.exit_code == 1 and "4 rows already" in resumed.stderr
    assert server.hits["/echo"] == 1
    specs[1]["url"] = server.url("/echo?v=2")
    inputs.write_text("".join((s if isinstance(s, str) else json.dumps(s)) + "\n"
                              for s in specs))
    changed = invoke(*FAST, "--resume", "-o", output, inputs)
    assert changed.exit_code == 2 and "its row for input 1 has the url" in changed.stderr


@pytest.mark.parametrize("args, message", [
    (["--resume"], "--resume needs -o FILE"),
    (["--resume", "-o", "-"], "--resume needs -o FILE"),
    (["--resume", "-o", "rows.json"], "--resume appends rows to a csv or jsonl file, not json"),
    (["--resume", "-o", "rows.jsonl", "-f", "table"], "--resume appends rows to a csv or jsonl "
                                                       "file, not table"),
    (["--retry-failed", "-o", "rows.jsonl"], "--retry-failed works with --resume"),
    (["--resume", "--demo", "-o", "rows.jsonl"], "--resume does not go with --demo"),
])
def test_resume_usage_errors(tmp_path, args, message):
    result = invoke(*[tmp_path / arg if arg.startswith("rows") else arg for arg in args],
                    input="")
    assert result.exit_code == 2
    assert f"Error: {message}" in result.stderr and "Traceback" not in result.output


def test_resume_refuses_a_file_that_is_not_rows(tmp_path):
    output = tmp_path / "rows.jsonl"
    output.write_text('{"index": 0, "url": "http://127.0.0.1/", "ok": true}\nhello\n')
    result = invoke("--resume", "-o", output, input="http://127.0.0.1:9/\n")
    assert result.exit_code == 2
    assert f"Error: line 2 of {output} is not a row" in result.stderr
    csv_output = tmp_path / "rows.csv"
    csv_output.write_text("index,url\n0,http://127.0.0.1/\n")
    other = invoke("--resume", "-o", csv_output, input="http://127.0.0.1:9/\n")
    assert other.exit_code == 2 and f"{csv_output} has the columns index, url" in other.stderr


# -- --save across resumed runs ---------------------------------------------------------------


HOSTILE = ["/../../x", "//etc/passwd", "/%2e%2e%2f%2e%2e%2fescape", "/" + "n" * 3000,
           "/same", "/same", "/dir/"]


def test_save_keeps_hostile_urls_inside_dir_and_a_resume_duplicates_no_file(server, tmp_path):
    urls = [server.base_url + path for path in HOSTILE]
    urls += [server.url(f"/bytes/{n}") for n in (5, 7)]
    bodies, output = tmp_path / "bodies", tmp_path / "rows.jsonl"
    inputs = url_file(tmp_path, urls)
    flags = [*FAST, "--ok-status", "100-599", "--save", bodies, "-o", output]
    assert invoke(*flags, inputs).exit_code == 0
    first = {row["index"]: row["path"] for row in rows_in(output)}
    assert len(set(first.values())) == len(urls)
    assert all(os.path.dirname(path) == str(bodies) for path in first.values())
    assert sorted(os.listdir(bodies)) == sorted(os.path.basename(p) for p in first.values())
    assert sorted(os.listdir(tmp_path)) == ["bodies", "rows.jsonl", "urls.txt"]  # no escape
    kept = [line for line in output.read_text().splitlines()
            if json.loads(line)["index"] < 4]  # as if inputs 4 to 8 had not finished
    output.write_text("".join(line + "\n" for line in kept))
    resumed = invoke(*flags, "--resume", inputs)
    assert resumed.exit_code == 0, resumed.output
    rows = assert_each_input_once(output, urls)
    assert {row["index"]: row["path"] for row in rows} == first  # the same names again
    assert sorted(os.listdir(bodies)) == sorted(os.path.basename(p) for p in first.values())
    assert open(first[8], "rb").read() == b"0123456"  # /bytes/7, under input 8's own name


# -- progress and logging ------------------------------------------------------------------


def has_bar(text):
    """Whether ``text`` shows the progress bar (the summary says "req/s" too)."""
    return re.search(r"req/s, ok \d+, failed \d+, retries \d+\]", text) is not None


def run_on_a_terminal(args, child_env, tmp_path):
    """Run the command with stderr on a pseudo-terminal; return (exit code, what the
    terminal showed, stdout)."""
    master, slave = pty.openpty()
    stdout = tmp_path / "stdout"
    with open(stdout, "wb") as out:
        proc = start(args, child_env, stdout=out, stderr=slave)
    os.close(slave)
    shown = b""
    try:
        while True:
            gevent.socket.wait_read(master)
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        code = proc.wait()
    finally:
        os.close(master)
        proc.kill()
    return code, shown.decode("utf-8", "replace"), stdout.read_text()


def test_progress_bar_on_a_terminal_with_logs_above_it(server, tmp_path, child_env):
    urls = [server.url(f"/delay/0.05?n={n}") for n in range(6)] + [
        server.url("/flaky/p?fail=1"), server.url("/status/404"),
        server.url("/flaky/cool?fail=1&status=429&retry_after=0")]
    args = ["-c", "4", "-r", "1", "--backoff", "0.05", "-v", url_file(tmp_path, urls)]
    code, shown, stdout = run_on_a_terminal(args, child_env, tmp_path)
    assert code == 1
    assert has_bar(shown) and "9/9" in shown and "ok 8, failed 1, retries 2" in shown
    assert "batchfetch: retrying " + server.url("/flaky/p?fail=1") + " in " in shown
    assert "(attempt 1: 503)\r\n" in shown  # a whole line, not broken by the bar
    assert f"batchfetch: cooling down http://127.0.0.1:{server.port} for 0.00 s " \
           f"(Retry-After)" in shown
    assert "9 fetched: 8 ok, 1 failed, 2 retries" in shown
    assert sorted(json.loads(line)["index"] for line in stdout.splitlines()) == list(range(9))


def test_no_progress_turns_the_bar_off_on_a_terminal(server, tmp_path, child_env):
    args = ["--no-progress", *FAST, url_file(tmp_path, [server.url("/ok")])]
    code, shown, _ = run_on_a_terminal(args, child_env, tmp_path)
    assert code == 0 and "1 fetched: 1 ok" in shown and not has_bar(shown)


def test_progress_only_when_asked_on_a_pipe(server, tmp_path):
    inputs = url_file(tmp_path, [server.url("/ok"), server.url("/ok?2")])
    plain = invoke(*FAST, inputs)
    assert "2 fetched" in plain.stderr and not has_bar(plain.stderr)
    forced = invoke("--progress", *FAST, inputs)
    assert has_bar(forced.stderr) and "2/2" in forced.stderr and "ok 2, failed 0" in \
        forced.stderr
    assert not has_bar(forced.stdout) and len(forced.stdout.splitlines()) == 2


def test_progress_on_a_pipe_of_urls_has_no_total(server, child_env):
    """A pipe cannot be counted ahead: the bar shows rows done and the rate, no total."""
    proc = start(["--progress", *FAST], child_env, stdin=subprocess.PIPE)
    try:
        _, stderr = proc.communicate(f"{server.url('/ok')}\n{server.url('/ok')}\n".encode())
    finally:
        proc.kill()
    assert proc.returncode == 0 and has_bar(stderr.decode())
    assert re.search(r"\r2req \[", stderr.decode()) and "/2 " not in stderr.decode()


def test_progress_counts_rows_kept_by_resume(server, tmp_path):
    urls = [server.url(f"/ok?n={n}") for n in range(4)]
    output, inputs = tmp_path / "rows.jsonl", url_file(tmp_path, urls)
    invoke(*FAST, "-o", output, inputs)
    output.write_text("".join(output.read_text().splitlines(keepends=True)[:3]))
    resumed = invoke("--progress", *FAST, "--resume", "-o", output, inputs)
    assert "3/4" in resumed.stderr and "4/4" in resumed.stderr
