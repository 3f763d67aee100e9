"""The scheduler: retries, Retry-After and cool-downs, streaming, fairness, rate, hooks."""
import email.utils
import json
import gc
import time

import gevent
import gevent.event
import gevent.server
import pytest

from batchfetch import FetchOptions, HTTPStatusError, OptionError, fetch_all, iter_fetch
from batchfetch.testing import LoopbackServer

pytestmark = pytest.mark.usefixtures("both_paths")

QUICK = {"backoff": 0.01}  # no short timeout: requests that answer must not race one


def live_greenlets() -> int:
    """Greenlets of this hub still running (gevent's resolver threads are not counted)."""
    gc.collect()
    return sum(1 for obj in gc.get_objects()
               if isinstance(obj, gevent.Greenlet) and not obj.dead)


def test_flaky_then_ok_takes_three_attempts(server):
    row = fetch_all([server.url("/flaky/a?fail=2&status=503")], **QUICK)[0]
    assert (row.ok, row.status, row.attempts) == (True, 200, 3)
    assert server.flaky_counts["a"] == 3


def test_retries_give_up_with_the_last_status(server):
    row = fetch_all([server.url("/flaky/b?fail=9&status=502")], retries=2, **QUICK)[0]
    assert (row.ok, row.status, row.error, row.attempts) == (False, 502, "http", 3)


def test_404_is_not_retried(server):
    row = fetch_all([server.url("/status/404")], **QUICK)[0]
    assert (row.attempts, server.hits["/status/404"]) == (1, 1)


def test_transient_errors_are_retried_for_get(server):
    row = fetch_all([server.url("/fault/reset")], retries=2, **QUICK)[0]
    assert (row.error, row.attempts, server.hits["/fault/reset"]) == ("reset", 3, 3)


def test_retry_after_seconds_is_honoured_and_counted_in_elapsed(server):
    row = fetch_all([server.url("/flaky/c?fail=1&status=429&retry_after=1")], **QUICK)[0]
    assert (row.ok, row.attempts) == (True, 2)
    assert row.elapsed >= 1.0


def test_retry_after_http_date_is_honoured(server):
    """The retry waits for the date itself. (Not ``elapsed >= 1``: the date has whole
    seconds, so a start delayed between formatting it and the first attempt shortened the
    wait below one second.)"""
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    row = fetch_all([server.url(f"/flaky/d?fail=1&status=503&retry_after={when}")],
                    **QUICK)[0]
    finished = time.time()
    assert (row.ok, row.attempts) == (True, 2)
    assert finished >= email.utils.parsedate_to_datetime(when).timestamp()


def test_retry_after_beyond_max_retry_wait_fails_at_once(server):
    row = fetch_all([server.url("/status/429?retry_after=3600")], max_retry_wait=5,
                    **QUICK)[0]
    assert (row.ok, row.status, row.error, row.attempts) == (False, 429, "http", 1)
    assert "Retry-After 3600" in row.message and "max_retry_wait=5" in row.message


def test_retry_after_pauses_the_whole_host_not_others(server):
    """A 429 with Retry-After holds back every request to that host; other hosts go on.

    The cool-down (an hour) outlasts the test, so the order does not depend on how fast the
    other host answers: its three rows come while this host's three items are unsent."""
    with LoopbackServer() as other:
        items = [server.url("/flaky/e?fail=1&status=429&retry_after=3600")]
        items += [server.url("/ok")] * 3 + [other.url("/ok")] * 3
        rows = iter_fetch(items, concurrency=1, max_retry_wait=3600, **QUICK)
        first = [next(rows).index for _ in range(3)]
        rows.close()
    assert first == [4, 5, 6]  # not held back by the cool-down
    assert (server.flaky_counts["e"], server.hits["/ok"]) == (1, 0)  # waiting for it


def test_post_is_not_retried_on_a_plain_503(server):
    row = fetch_all([{"url": server.url("/flaky/f?fail=1&status=503"), "method": "POST"}],
                    **QUICK)[0]
    assert (row.status, row.attempts) == (503, 1)


def test_post_is_retried_on_503_with_retry_after(server):
    row = fetch_all([{"url": server.url("/flaky/g?fail=1&status=503&retry_after=0"),
                      "method": "POST"}], **QUICK)[0]
    assert (row.ok, row.attempts) == (True, 2)


def test_post_retries_everything_when_asked(server):
    """Two keys: with one, the second run's first request was already past the failure,
    so it succeeded without a retry and the test could not fail."""
    def item(key):
        return {"url": server.url(f"/flaky/{key}?fail=1&status=500"), "method": "PATCH"}

    assert fetch_all([item("h")], **QUICK)[0].attempts == 1
    row = fetch_all([item("h2")], retry_non_idempotent=True, **QUICK)[0]
    assert (row.ok, row.attempts) == (True, 2)


def test_post_is_not_retried_after_a_reset_on_a_fresh_connection(server):
    row = fetch_all([{"url": server.url("/fault/reset"), "method": "POST"}], **QUICK)[0]
    assert (row.error, row.attempts) == ("reset", 1)


def test_post_is_retried_on_connect_errors():
    row = fetch_all([{"url": "http://127.0.0.1:9/", "method": "POST"}], retries=2,
                    **QUICK)[0]
    assert (row.error, row.attempts) == ("connect", 3)


def test_post_is_retried_after_a_reset_on_a_reused_connection():
    """A keep-alive connection closed by the server before the POST's response: safe."""
    served = []

    def handle(sock, _address):
        stream = sock.makefile("rb")
        first = True
        while True:
            request_line = stream.readline()
            if not request_line:
                break
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            stream.read(length)
            served.append(request_line.split()[0].decode())
            if first or served.count("POST") > 1:
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                first = False
                continue
            sock.close()  # the reused connection dies before any response byte
            break

    listener = gevent.server.StreamServer(("127.0.0.1", 0), handle)
    listener.start()
    try:
        url = f"http://127.0.0.1:{listener.server_port}/"
        table = fetch_all([url, {"url": url, "method": "POST", "data": "x"}], concurrency=1,
                          **QUICK)
    finally:
        listener.stop()
    assert [row.ok for row in table] == [True, True], [row.message for row in table]
    assert table[1].attempts == 2 and served == ["GET", "POST", "POST"]


def test_a_request_waiting_to_retry_holds_no_slot(server):
    """concurrency 1: while item 0 backs off, the others are fetched. Its backoff (half an
    hour or more) outlasts the test, so the others need not beat it."""
    items = [server.url("/flaky/i?fail=1&status=503")] + [server.url("/ok")] * 4
    rows = iter_fetch(items, concurrency=1, backoff=3600, max_retry_wait=3600)
    order = [next(rows).index for _ in range(4)]
    rows.close()
    assert order == [1, 2, 3, 4] and server.flaky_counts["i"] == 1


def test_deadline_cuts_a_trickle_in_time(server):
    """The trickle would take 50 s; the deadline cuts it mid-body, not before 1 s. (How soon
    after 1 s is for bench/: an upper bound on elapsed failed on a loaded machine.)"""
    row = fetch_all([server.url("/fault/trickle?interval=0.5&bytes=100")], deadline=1.0,
                    retries=0)[0]
    assert (row.error, row.status) == ("deadline", 200)
    assert row.elapsed >= 1.0
    assert row.size < 100


def test_deadline_attempts_are_retried_like_timeouts(server):
    row = fetch_all([server.url("/fault/hang")], deadline=0.2, retries=1, **QUICK)[0]
    assert (row.error, row.attempts) == ("deadline", 2)


def test_each_attempt_of_a_worker_gets_the_whole_deadline(server):
    """One worker, attempts that together outlast the deadline and each stay within it.

    A gevent timer stopped and started again (libev) counts only the time left from
    before: reusing one per worker cut later attempts early (the benchmark's W5 made
    11,654 attempts instead of 10,600).
    After a cut, the next attempts still get the whole deadline too.

    A trickle takes about half the deadline, but whether it ends within the deadline is up
    to the machine (it must not be an upper bound); what holds in every run is that an
    attempt cut by the deadline lasted the whole deadline (the reused timer cut the second
    trickle after about 0.3 s), and that each cut raised an exception of its own."""
    trickle = server.url("/fault/trickle?interval=0.1&bytes=3")  # about 0.3 s
    handled = []
    rows = fetch_all([trickle, trickle, trickle, server.url("/fault/hang"), trickle, trickle,
                      server.url("/fault/hang")],
                     concurrency=1, deadline=0.6, retries=0,
                     exception_handler=lambda item, exc: handled.append(exc))
    assert {row.error for row in rows} <= {"", "deadline"}
    assert (rows[3].error, rows[6].error) == ("deadline", "deadline")
    assert all(row.elapsed >= 0.6 for row in rows if row.error == "deadline"), \
        [(row.error, round(row.elapsed, 3)) for row in rows]
    assert all(row.size == 3 for row in rows if row.ok)
    assert len(handled) == sum(not row.ok for row in rows)
    assert len({id(exc) for exc in handled}) == len(handled)


def test_max_bytes_stops_a_gzip_bomb_early(server):
    row = fetch_all([server.url("/gzip/2000000000")], max_bytes=1_000_000, **QUICK)[0]
    assert (row.error, row.status) == ("too_large", 200)
    assert 1_000_000 < row.size <= 1_000_000 + 1024 * 1024


# The peak RSS of the process since it started: VmHWM. ru_maxrss is no good here, as Linux
# carries the parent's high-water mark over fork and exec: a child of a pytest process
# grown to 150 MB reports at least 150 MB, whatever it did itself.
PEAK_MB = ("int(next(line for line in open('/proc/self/status') "
           "if line.startswith('VmHWM:')).split()[1]) // 1024")


def test_big_bodies_stop_at_max_bytes_with_small_memory(server, tmp_path):
    """A 2 GB body and a gzip bomb, cut at 10 MB, in a subprocess whose peak RSS is read."""
    import subprocess
    import sys

    script = tmp_path / "big.py"
    script.write_text(
        "import batchfetch, sys\n"
        "urls = sys.argv[1:]\n"
        "table = batchfetch.fetch_all(urls, max_bytes=10_000_000, keep_body=True, retries=0)\n"
        "print([row.error for row in table])\n"
        f"print({PEAK_MB})\n")
    result = subprocess.run(
        [sys.executable, str(script), server.url("/bytes/2000000000"),
         server.url("/gzip/2000000000")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    errors, peak_mb = result.stdout.splitlines()
    assert errors == "['too_large', 'too_large']"
    assert int(peak_mb) < 150


def test_kept_bomb_bodies_stay_under_300_mb_at_the_default_concurrency(server, tmp_path):
    """Issue 13, item 1: --body with no --max-bytes, every response a gzip bomb (1 MiB on
    the wire, 1 GiB decoded): peak RSS of the command under 300 MB, every row too_large."""
    import subprocess
    import sys

    urls = tmp_path / "bombs.txt"
    urls.write_text("".join(server.url(f"/gzip/{1 << 30}?n={n}") + "\n" for n in range(48)))
    rows = tmp_path / "rows.jsonl"
    command = ("import runpy, sys\n"
               "sys.argv = ['batchfetch'] + sys.argv[1:]\n"
               "try:\n"
               "    runpy.run_module('batchfetch', run_name='__main__')\n"
               "except SystemExit as stop:\n"
               f"    print(stop.code, {PEAK_MB})\n")
    result = subprocess.run(
        [sys.executable, "-c", command, "-q", "--body", "-r", "0", "-o", str(rows), str(urls)],
        capture_output=True, text=True, timeout=60)
    code, peak_mb = map(int, result.stdout.split())
    assert code == 1, result.stderr
    errors = [json.loads(line)["error"] for line in rows.read_text().splitlines()]
    assert errors == ["too_large"] * 48
    assert peak_mb < 300


def test_per_host_cap_keeps_a_slow_host_from_blocking_a_fast_one(server):
    """concurrency 50, per_host 4: B's rows do not wait behind A's 95%.

    A never answers, so B's five rows come first however fast the machine is; without the
    cap A's requests would take every slot and B's last three would never start."""
    with LoopbackServer() as fast:
        items = []
        for n in range(100):
            items.append(fast.url("/ok") if n % 20 == 10 else server.url("/fault/hang"))
        rows = iter_fetch(items, concurrency=50, per_host=4)
        first = [next(rows) for _ in range(5)]
        rows.close()
    assert sorted(row.index for row in first) == [10, 30, 50, 70, 90]
    assert server.hits["/fault/hang"] <= 4


def test_a_host_filling_every_slot_does_not_hold_back_another_hosts_item(server):
    """Host A's pool holds every connection and always has an idle one and more items;
    B's item, 11th in the input, still goes out long before A's items run out (it came
    last before). "Within about a round" is checked without I/O in test_hosts.py: here
    B's row also waits for a new connection (and gevent's resolver thread) while A's rows
    come four every 20 ms, so a tight bound on its place raced with the machine's load."""
    with LoopbackServer() as other:
        items = [server.url("/delay/0.02")] * 200
        items.insert(10, other.url("/ok"))
        order = [row.index for row in iter_fetch(items, concurrency=4, **QUICK)]
    assert order.index(10) < 100, order.index(10)


def test_per_host_cap_bounds_connections(server):
    table = fetch_all([server.url("/delay/0.05")] * 40, concurrency=20, per_host=3, **QUICK)
    assert all(row.ok for row in table)
    assert server.connections_accepted <= 3


def test_rate_limits_attempts_per_second(server):
    started = time.monotonic()
    times = [time.monotonic() - started
             for _ in iter_fetch([server.url("/ok")] * 12, rate=10, **QUICK)]
    assert sum(1 for t in times if t < 1.0) <= 11
    assert times[-1] >= 1.0  # 12 starts at 10/s need at least 1.1 s


def test_input_is_pulled_lazily_within_max_pending(counting_input):
    yielded = 0
    rows = iter_fetch(counting_input, concurrency=8, max_pending=20, **QUICK)
    for _ in rows:
        yielded += 1
        assert counting_input.pulled - yielded <= 20
        if yielded == 200:
            break
    rows.close()
    assert counting_input.pulled <= 220


def test_options_are_validated_before_the_first_next():
    with pytest.raises(OptionError, match="concurrency"):
        iter_fetch(["http://127.0.0.1/"], concurrency=0)
    with pytest.raises(TypeError):
        iter_fetch([], options="fast")
    assert list(iter_fetch([], FetchOptions(retries=0), concurrency=2)) == []


def test_break_cancels_in_flight_requests_and_closes_connections(server, wait_until):
    before = live_greenlets()
    rows = iter_fetch([server.url("/ok")] + [server.url("/fault/hang")] * 10,
                      concurrency=11, timeout=30)
    first = next(rows)
    assert first.ok
    wait_until(lambda: server.hits["/fault/hang"] == 10)  # not a sleep that may be too short
    assert server.open_connections >= 10
    rows.close()
    wait_until(lambda: server.open_connections == 0)
    assert live_greenlets() <= before


def test_hooks_run_in_completion_order_before_each_row(server):
    """Item 0 never answers, so the other three rows come before it however fast the
    machine is (with a 0.3 s delay they had to beat it)."""
    seen, handled = [], []
    items = [server.url("/fault/hang"), server.url("/status/404"), "not a url",
             server.url("/ok")]
    yielded = []
    rows = iter_fetch(items, concurrency=4, on_result=seen.append,
                      exception_handler=lambda item, exc: handled.append((item, exc)),
                      **QUICK)
    for row in rows:
        assert seen[-1] is row
        yielded.append(row.index)
        if len(yielded) == 3:
            break
    rows.close()
    assert [row.index for row in seen] == yielded and sorted(yielded) == [1, 2, 3]
    assert sorted(item for item, _ in handled) == sorted(items[1:3])
    kinds = {item: exc for item, exc in handled}
    assert isinstance(kinds[items[1]], HTTPStatusError) and kinds[items[1]].status == 404


def test_an_exception_in_a_hook_stops_the_run_and_propagates(server, wait_until):
    before = live_greenlets()

    def explode(row):
        raise RuntimeError(f"hook saw {row.index}")

    with pytest.raises(RuntimeError, match="hook saw"):
        fetch_all([server.url("/ok")] + [server.url("/fault/hang")] * 3, concurrency=4,
                  on_result=explode, timeout=30)
    wait_until(lambda: server.open_connections == 0)
    assert live_greenlets() <= before


def test_one_row_per_input_with_retries_in_a_mixed_batch(server):
    """Each copy of the batch has its own flaky key: with one key, the two flaky inputs
    raced for its one failure and either could get it (issue 13). No read timeout: the
    deadline cuts the hang and the trickle, so the inputs that succeed have the whole
    deadline rather than half a second."""
    def batch(copy):
        return [server.url(f"/flaky/m{copy}?fail=1&status=503"), server.url("/fault/reset"),
                server.url("/fault/hang"), server.url("/status/429?retry_after=999"),
                "http://", server.url("/fault/trickle?interval=0.1&bytes=100"),
                {"url": server.url("/echo"), "method": "POST", "json": {}}]

    items = batch(0) + batch(1)
    table = fetch_all(items, concurrency=6, deadline=1.5, retries=1, backoff=0.01,
                      max_retry_wait=2)
    assert [row.index for row in table] == list(range(len(items)))
    assert [row.error for row in table] == [
        "", "reset", "deadline", "http", "invalid_url", "deadline", ""] * 2
    assert [row.attempts for row in table] == [2, 2, 2, 1, 0, 2, 1] * 2
    assert server.flaky_counts == {"m0": 2, "m1": 2}


def test_a_waiting_input_holds_up_neither_attempts_nor_rows(server):
    """An input that waits for its next item (a pipe) still gets its first row at once.

    The pipe waits until the first row is out (an event, not a 1 s sleep the row had to
    beat): were the input pulled in the caller's greenlet, nothing would ever set it."""
    produced = []
    first_row_out = gevent.event.Event()

    def slow_pipe():
        produced.append(1)
        yield server.url("/ok")
        first_row_out.wait()
        produced.append(2)
        yield server.url("/status/201")

    rows = iter_fetch(slow_pipe(), **QUICK)
    first = next(rows)
    assert first.status == 200 and produced == [1]
    first_row_out.set()
    assert [row.status for row in rows] == [201]


def test_an_error_raised_by_the_input_propagates(server):
    def broken():
        yield server.url("/ok")
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(iter_fetch(broken(), **QUICK))


def test_retries_and_cool_downs_are_logged(server, caplog):
    caplog.set_level("INFO", logger="batchfetch")
    fetch_all([server.url("/flaky/log?fail=1&status=429&retry_after=0"),
               server.url("/flaky/log2?fail=1&status=500")], **QUICK)
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("cooling down http://127.0.0.1:") and "Retry-After" in m
               for m in messages), messages
    assert sum(m.startswith("retrying http://127.0.0.1:") for m in messages) == 2


def test_an_item_waits_only_briefly_for_its_hosts_busy_connections(server, wait_until):
    """Every connection of the budget is open, A's is busy with a response that never
    comes and B's second is idle: A's next item waits a moment for A's connection, then
    opens a new one rather than wait behind it. (With 2 s responses instead, its row had
    to beat them.)"""
    with LoopbackServer() as other:
        items = [server.url("/fault/hang"), other.url("/fault/hang"), other.url("/ok"),
                 server.url("/ok")]
        rows = iter_fetch(items, concurrency=3)
        order = [next(rows).index for _ in range(2)]
        rows.close()
        wait_until(lambda: other.hits["/fault/hang"] == 1)  # B's first connection is counted
        assert order == [2, 3]
        assert (server.connections_accepted, other.connections_accepted) == (2, 2)


def test_a_hosts_last_item_waits_for_its_own_busy_connection(server, held_server):
    """Near the end of a run, a host whose last item lags behind waits for its own busy
    connection instead of opening a new one in the slot another host's finished item freed.

    Concurrency 2: A's first request is held and B's answers; A's second item is then held
    back (up to 0.25 s) rather than open a connection, and the test frees A's connection as
    soon as B's row is out, so A's second request reuses it. With no such wait, A opens its
    second connection before B's row is even yielded, whatever the timing.

    This replaced a run of 800 items over 4 hosts that asserted exactly 16 connections:
    the scheduler opens one beyond the budget by design when jitter makes a job wait more
    than a round (HostQueues' docstring): it did in 13 of 30 runs under CPU load (17 or 18
    connections, all opened mid-run, none at the end) and once in a full suite run without
    load. The connection economy over a whole run is checked on a simulated clock in
    test_hosts.py and measured by bench W4."""
    items = [held_server.url("/a1"), server.url("/ok"), held_server.url("/a2")]
    order = []
    for row in iter_fetch(items, concurrency=2, **QUICK):
        order.append(row.index)
        if row.index == 1:
            held_server.released.set()
    assert order == [1, 0, 2]
    assert (held_server.connections_accepted, held_server.requests_received) == (1, 2)
