"""Where rows go, when it goes wrong (issue 13, items 10 to 12): a reader that reads nothing,
a reader that goes away while a URL hangs, a full disk. The command runs as a subprocess
against the loopback server in this process; every wait is for an event (the only time
limit is pytest-timeout's), never a stopwatch."""
import fcntl
import json
import os
import resource
import signal
import subprocess
import sys

import gevent
import gevent.socket
import pytest
from command_process import bytes_in_pipe, start, url_file, wait_for

F_SETPIPE_SZ = 1031  # fcntl's, on Linux


def one_page_pipe():
    """A pipe that holds one page (4096 bytes): one row of ~3.4 KB fills it."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, F_SETPIPE_SZ, 4096)
    return read_end, write_end


def stderr_line_with(proc, text):
    """Read the command's stderr until a line containing ``text``; return what was read."""
    seen = b""
    while text.encode() not in seen:
        line = proc.stderr.readline()
        assert line, f"stderr ended before {text!r}: {seen!r}"
        seen += line
    return seen.decode()


def read_all_nonblocking(fd):
    os.set_blocking(fd, False)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


def start_with_a_full_pipe(server, tmp_path, child_env):
    """The command writing 100 rows of ~3.4 KB with --body into a one-page pipe, a last URL
    hanging: returns once every row is ready and the pipe holds one, so the command waits
    to write the second. Returns the process and the pipe's read end."""
    urls = [server.url(f"/bytes/3000?n={n}") for n in range(100)] + [server.url("/fault/hang")]
    read_end, write_end = one_page_pipe()
    proc = start(["--body", "-r", "0", url_file(tmp_path, urls)], child_env, stdout=write_end)
    os.close(write_end)
    wait_for(lambda: server.hits.get("/bytes/3000") == 100 and server.hits.get("/fault/hang") == 1
             and bytes_in_pipe(read_end) > 0)
    return proc, read_end


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_a_run_whose_reader_reads_nothing(server, tmp_path, child_env, signum):
    """Issue 13, item 10: with stdout full (| less), Ctrl-C or SIGTERM twice left the process
    stuck in the pipe write until the reader quit, then it exited 141 with no summary."""
    proc, read_end = start_with_a_full_pipe(server, tmp_path, child_env)
    proc.send_signal(signum)
    told = stderr_line_with(proc, "interrupted: ")  # the first signal is heard
    # Then either it says it waits for the reader to take a finished row (the signal came
    # while that row waited for room), or it ends by itself (it came between rows).
    line = proc.stderr.readline().decode()
    waits = line.startswith("batchfetch: waiting for the reader to take the finished rows; "
                            "Ctrl-C again exits now")
    if waits:
        proc.send_signal(signum)  # ... which the second signal cuts short
    assert proc.wait() == 130
    rows = read_all_nonblocking(read_end).split(b"\n")  # the first read of the reader
    assert rows[-1] == b""  # no row cut in two: each went into the pipe whole
    complete = [json.loads(row) for row in rows[:-1]]
    told += line + proc.stderr.read().decode()
    assert "Traceback" not in told
    assert waits == ("interrupted again: exiting now; finished rows the reader had not "
                     "taken: 1" in told)
    # The rows handed to the writer reached the pipe, but the one it was waiting to take.
    assert f"interrupted: {len(complete) + waits} rows written" in told


def test_after_one_signal_the_finished_rows_reach_a_slow_reader(server, tmp_path, child_env):
    """One signal is enough when the reader reads on: every row handed to the writer
    arrives whole, then the command exits 130."""
    proc, read_end = start_with_a_full_pipe(server, tmp_path, child_env)
    proc.send_signal(signal.SIGINT)
    told = stderr_line_with(proc, "interrupted: ")
    os.set_blocking(read_end, False)
    data = b""
    while True:
        gevent.socket.wait_read(read_end)
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        data += chunk
    assert proc.wait() == 130
    rows = [json.loads(line) for line in data.splitlines()]
    assert f"interrupted: {len(rows)} rows written" in told
    assert len({row["index"] for row in rows}) == len(rows)


def test_a_reader_going_away_is_noticed_while_a_url_still_hangs(server, tmp_path, child_env):
    """Issue 13, item 11: `batchfetch -q urls.txt | head -1` with one hanging URL left
    gave the prompt back only when that URL finished (2 min 4 s)."""
    urls = [server.url("/ok"), server.url("/fault/hang")]
    proc = start(["-q", "-t", "none", "--deadline", "none", url_file(tmp_path, urls)],
                 child_env)
    first = proc.stdout.readline()
    assert json.loads(first)["url"] == server.url("/ok")
    wait_for(lambda: server.hits.get("/fault/hang") == 1)
    proc.stdout.close()  # what head does after one line
    assert proc.wait() == 141  # no timeout, no deadline: only the closed reader ends it
    assert proc.stderr.read() == b""
    wait_for(lambda: server.open_connections == 0)  # and the hanging request went with it


@pytest.mark.parametrize("via", ["-o", "stdout"])
def test_a_full_disk_is_one_line_and_exit_74(server, tmp_path, child_env, via):
    """Issue 13, item 12: -o /dev/full (or stdout there) printed a 28 to 40 line traceback
    and exited 1, the code for "some row not ok"."""
    urls = url_file(tmp_path, [server.url("/ok"), server.url("/json")])
    if via == "-o":
        proc = start(["-o", "/dev/full", urls], child_env)
    else:
        with open("/dev/full", "w") as full:
            proc = start([urls], child_env, stdout=full)
    assert proc.wait() == 74
    name = "/dev/full" if via == "-o" else "standard output"
    assert proc.stderr.read().decode() == \
        f"batchfetch: cannot write rows to {name}: No space left on device\n"


def test_rows_written_before_the_disk_filled_stay_intact(server, tmp_path, child_env):
    """A file that stops growing mid-run (RLIMIT_FSIZE plays the full disk): the rows
    before stay as written, the one that met the limit is cut (--resume drops it)."""
    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))

    rows = tmp_path / "rows.jsonl"
    urls = url_file(tmp_path, [server.url(f"/ok?n={n}") for n in range(40)])
    proc = subprocess.Popen([sys.executable, "-m", "batchfetch", "-c", "1", "-o", rows, urls],
                            env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=small_disk)
    assert proc.wait() == 74
    assert proc.stderr.read().decode() == \
        f"batchfetch: cannot write rows to {rows}: File too large\n"
    *whole, cut = rows.read_bytes().split(b"\n")
    assert len(rows.read_bytes()) == 3000 and len(whole) >= 5
    assert [json.loads(line)["index"] for line in whole] == list(range(len(whole)))
    with pytest.raises(ValueError):
        json.loads(cut)


def test_a_csv_header_to_a_full_stdout_is_exit_74_too(server, tmp_path, child_env):
    """The CSV header is written before any row: it escaped as a traceback, exit 1."""
    with open("/dev/full", "w") as full:
        proc = start(["-q", "-f", "csv", url_file(tmp_path, [server.url("/ok")])], child_env,
                     stdout=full)
    assert proc.wait() == 74
    assert proc.stderr.read() == \
        b"batchfetch: cannot write rows to standard output: No space left on device\n"


def test_a_closed_stdout_is_exit_74_and_a_closed_stderr_is_no_crash(server, tmp_path,
                                                                    child_env):
    urls = url_file(tmp_path, [server.url("/ok")])
    command = f"exec {sys.executable} -m batchfetch {urls}"
    closed_stdout = subprocess.run(["sh", "-c", command + " >&-"], env=child_env,
                                   stderr=subprocess.PIPE)
    assert closed_stdout.returncode == 74
    assert closed_stdout.stderr == \
        b"batchfetch: cannot write rows to standard output: it is closed\n"
    closed_stderr = subprocess.run(["sh", "-c", command + " 2>&-"], env=child_env,
                                   stdout=subprocess.PIPE)
    assert closed_stderr.returncode == 0
    assert json.loads(closed_stderr.stdout)["ok"] is True


def test_resume_refuses_what_is_not_a_regular_file(child_env, tmp_path):
    """/dev/full reads as an endless line of zeros: --resume read it until memory ran out."""
    urls = url_file(tmp_path, ["http://127.0.0.1:9/"])
    proc = start(["--resume", "-o", "/dev/full", urls], child_env)
    assert proc.wait() == 2
    assert b"--resume reads the rows already in '/dev/full', which is not a regular file" \
        in proc.stderr.read()


def test_an_input_error_leaves_an_existing_output_file_as_it_was(tmp_path, child_env):
    urls = tmp_path / "urls.txt"
    urls.write_bytes(b"http://127.0.0.1:9/\nhttp://caf\xe9/\n")
    kept = tmp_path / "keep.csv"
    kept.write_text("precious\n")
    proc = start(["-o", kept, urls], child_env)
    assert proc.wait() == 2
    assert kept.read_text() == "precious\n"
    fresh = tmp_path / "fresh.csv"
    assert start(["-o", fresh, urls], child_env).wait() == 2
    assert not fresh.exists()


def test_output_naming_the_input_file_is_a_usage_error(tmp_path, child_env):
    urls = url_file(tmp_path, ["http://127.0.0.1:9/"])
    proc = start(["-o", urls, urls], child_env)
    assert proc.wait() == 2
    assert b"is an input file: its rows would overwrite the URLs being read" \
        in proc.stderr.read()
    assert urls.read_text() == "http://127.0.0.1:9/\n"


def test_a_socket_peer_that_half_closes_still_gets_every_row(server, tmp_path, child_env):
    """On a socket, readable does not mean gone: a peer's shutdown(SHUT_WR), or data it
    sends, ended the run with 141 and a row lost."""
    import socket

    ours, theirs = socket.socketpair()
    urls = url_file(tmp_path, [server.url("/delay/0.5"), server.url("/ok")])
    proc = start(["-q", urls], child_env, stdout=theirs.fileno())
    theirs.close()
    wait_for(lambda: server.hits.get("/delay/0.5") == 1)
    ours.shutdown(socket.SHUT_WR)  # we will send nothing more, but we read on
    data = b""
    while chunk := ours.recv(65536):
        data += chunk
    assert proc.wait() == 0
    assert sorted(json.loads(line)["index"] for line in data.splitlines()) == [0, 1]
