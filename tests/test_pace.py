"""Per-host back-off: one decrease per overload event, recovery counted in good answers,
429s retried without counting against retries, and one host's trouble kept to itself."""
import json
import logging
import time

import pytest

from batchfetch import fetch_all, iter_fetch
from batchfetch.scheduling.hosts import OPENING_STEP, OPENING_WINDOW, HostQueues
from batchfetch.scheduling.pace import (RATE_DECREASE, RATE_STEP, SHARED_MINIMUM, UNTRUSTED_DECREASE, Pacer,
                             overload_signal)
from batchfetch.testing import LoopbackServer

# -- the pacer, driven directly: counts, not seconds --------------------------------------


def test_a_storm_of_429s_in_flight_at_once_is_one_decrease():
    pacer = Pacer(window_cap=100)
    decreases = [pacer.answered("h", started=0.0, now=1.0 + n / 1000, status=429, error="http",
                                in_flight=100 - n) for n in range(100)]
    assert decreases.count(True) == 1 and decreases[0]
    # a quarter of the 100 in flight: no good answer yet, so many of them are refused
    assert pacer.pace("h").window == 25
    assert pacer.pace("h").signals["429"] == 100


def test_a_429_to_an_attempt_started_after_the_decrease_is_a_new_event():
    pacer = Pacer(window_cap=100)
    assert pacer.answered("h", started=0.0, now=1.0, status=429, error="http", in_flight=40)
    assert not pacer.answered("h", started=0.9, now=1.1, status=429, error="http", in_flight=30)
    pacer.answered("h", started=1.1, now=1.15, status=200, error="", in_flight=21)
    assert pacer.answered("h", started=1.2, now=1.3, status=429, error="http", in_flight=20)
    assert pacer.pace("h").decreases == 2
    assert pacer.pace("h").window == 5  # half of the window of 10 (a quarter of 40)


def test_a_host_that_refuses_everything_is_slowed_once_not_once_per_answer():
    """A quota used up: every answer a 429. Halving at each would space starts by days;
    its Retry-After and the rows' own limits deal with it."""
    pacer = Pacer(window_cap=100, least_rate=1 / 60)
    for n in range(50):
        pacer.answered("h", started=0.02 * n, now=0.02 * (n + 1), status=200, error="",
                       in_flight=5)
    results = [pacer.answered("h", started=2.0 + n, now=2.5 + n, status=429, error="http",
                              in_flight=1) for n in range(30)]
    assert results.count(True) == 1
    assert pacer.pace("h").rate > 10


def test_the_window_climbs_back_one_per_window_of_good_answers_then_is_lifted():
    pacer = Pacer(window_cap=8)
    pacer.answered("h", started=0.0, now=0.5, status=200, error="", in_flight=8)
    pacer.answered("h", started=0.0, now=1.0, status=429, error="http", in_flight=8)
    pace = pacer.pace("h")
    assert pace.window == 4  # half: a good answer came, so those in flight are accepted
    for _ in range(4):
        pacer.answered("h", started=1.5, now=2.0, status=200, error="", in_flight=4)
    assert int(pace.window) == 5  # four good answers at a window of four: one more
    answers = 4
    while pace.window is not None:
        pacer.answered("h", started=1.5, now=2.0, status=200, error="", in_flight=4)
        answers += 1
    assert answers == 4 + 5 + 6 + 7  # one round of answers per step, lifted at the cap


def test_the_rate_is_set_from_good_answers_and_recovers_per_answer():
    pacer = Pacer(window_cap=100)
    for n in range(50):  # 50 good answers over one second
        pacer.answered("h", started=0.0, now=0.02 * (n + 1), status=200, error="", in_flight=5)
    assert pacer.answered("h", started=0.5, now=1.0, status=429, error="http", in_flight=5)
    pace = pacer.pace("h")
    assert pace.rate == pytest.approx(RATE_DECREASE * 50, rel=0.05)
    before = pace.rate
    for _ in range(20):
        pacer.answered("h", started=1.1, now=1.2, status=200, error="", in_flight=5)
    assert pace.rate == pytest.approx(before + 20 * RATE_STEP)


def test_a_rate_measured_over_too_short_a_time_is_stepped_down_by_a_quarter():
    """Right after a Retry-After pause, the server's refilled burst makes the accepted rate
    look higher than it is: under a second of sending, the rate in force steps down by a
    quarter instead of to the measure."""
    pacer = Pacer(window_cap=100)
    for n in range(50):
        pacer.answered("h", started=0.02 * n, now=0.02 * (n + 1), status=200, error="",
                       in_flight=5)
    assert pacer.answered("h", started=0.5, now=1.0, status=429, error="http", in_flight=5)
    pace = pacer.pace("h")
    pace.pause(1.0, 4.5)  # a Retry-After: 3.5 of the next 4 s paused
    for n in range(10):
        pacer.answered("h", started=4.5 + 0.05 * n, now=4.55 + 0.05 * n, status=200, error="",
                       in_flight=5)
    before, measured = pace.rate, pace.good_rate(5.0)
    assert pace.active_span(5.0) < 1.0 and measured is not None
    assert pacer.answered("h", started=4.9, now=5.0, status=429, error="http", in_flight=5)
    assert pace.rate == pytest.approx(UNTRUSTED_DECREASE * min(before, measured))


def test_a_flaky_503_in_twenty_never_lowers_the_pace_but_a_503_storm_does():
    pacer = Pacer(window_cap=100)
    for n in range(400):
        status = 503 if n % 20 == 0 else 200
        assert not pacer.answered("flaky", started=0.0, now=1.0, status=status, error="",
                                  in_flight=50)
    assert pacer.pace("flaky").window is None
    results = [pacer.answered("busy", started=0.0, now=1.0, status=503 if n % 2 else 200,
                              error="", in_flight=50) for n in range(40)]
    assert results.count(True) == 1
    assert results.index(True) == 2 * SHARED_MINIMUM - 1  # the eighth 503, half the answers


def test_timeouts_count_like_503s():
    assert overload_signal(None, "timeout") == overload_signal(None, "deadline") == "timeout"
    assert overload_signal(None, "reset") == ""
    assert overload_signal(500, "http") == ""
    pacer = Pacer(window_cap=10)
    results = [pacer.answered("h", started=0.0, now=1.0, status=None, error="timeout",
                              in_flight=10) for _ in range(SHARED_MINIMUM)]
    assert results == [False] * (SHARED_MINIMUM - 1) + [True]


# -- the queues: a new host's opening window, a host's own cap and spacing ----------------


def test_a_new_host_opens_gradually_until_it_answers():
    queues = HostQueues(per_host=100)
    for n in range(100):
        queues.add("h", n)
    started = [queues.take(now=0.0) for _ in range(100)]
    assert sum(job is not None for job in started) == OPENING_WINDOW
    assert queues.next_wakeup(0.0) == pytest.approx(OPENING_STEP)
    more = [queues.take(now=OPENING_STEP) for _ in range(100)]
    assert sum(job is not None for job in more) == OPENING_WINDOW  # doubled to 32
    queues.answered("h")
    queues.finished("h")
    rest = [queues.take(now=OPENING_STEP) for _ in range(100)]
    assert sum(job is not None for job in rest) == 100 - 2 * OPENING_WINDOW


def test_a_hosts_own_cap_and_spacing_hold_only_that_host():
    queues = HostQueues(per_host=10)
    for n in range(5):
        queues.add("slow", n)
        queues.add("fast", n)
    queues.answered("slow"), queues.answered("fast")
    queues.limit("slow", 1)
    queues.space("fast", until=5.0)
    assert queues.take(now=0.0) == ("slow", 0)  # fast is spaced until 5.0
    assert queues.take(now=0.0) is None  # slow is at its cap of one
    assert queues.cooling("fast", now=0.0) == "backoff"
    queues.limit("slow", None)
    assert queues.take(now=0.0) == ("slow", 1)
    assert queues.take(now=5.0) == ("fast", 0)


# -- runs against a rate-limited API on the loopback server --------------------------------


def test_no_row_is_lost_to_429s_with_the_defaults_even_with_no_retries(server, caplog):
    """A token bucket of 50 requests/s (bursts of 5) met with 40 requests in flight: before
    the back-off, most rows failed with 429 after their retries. retries=0 shows that the
    429s are not counted against them."""
    caplog.set_level(logging.INFO, logger="batchfetch")
    urls = [server.url("/limited/api?rate=50&burst=5&delay=0.02&retry_after=0.2")] * 150
    table = fetch_all(urls, concurrency=40, retries=0)
    assert [row.error for row in table if not row.ok] == []
    bucket = server.limited["api"]
    assert bucket.allowed == 150
    assert bucket.throttled == sum(row.attempts - 1 for row in table)
    decreases = [r for r in caplog.records if r.getMessage().startswith("slowing down for")]
    assert 1 <= len(decreases) <= bucket.throttled


def test_throttled_retries_are_capped_so_a_host_that_never_recovers_ends_with_a_row(server):
    urls = [server.url("/status/429")] * 3
    table = fetch_all(urls, throttled_retries=2, backoff=0.01)
    assert {(row.status, row.attempts) for row in table} == {(429, 3)}
    assert all("still throttled after 2 throttled retries" in row.message for row in table)


def test_throttled_waits_are_capped_in_all_by_max_retry_wait(server):
    row = fetch_all([server.url("/status/429?retry_after=1")], max_retry_wait=2.5)[0]
    assert (row.status, row.attempts) == (429, 3)  # waited 1 s twice; a third would pass 2.5
    assert "max_retry_wait=2.5 s in all" in row.message


def test_a_rate_limited_host_does_not_slow_the_others():
    """Rows of a healthy host all come back while a host limited to 5 requests/s is still
    being worked through, at the run's full concurrency."""
    with LoopbackServer() as limited, LoopbackServer() as healthy:
        slow = [limited.url("/limited/k?rate=5&burst=1&delay=0&every=0")] * 15
        fast = [healthy.url("/delay/0.01")] * 100
        items = [url for pair in zip(slow, fast[:15]) for url in pair] + fast[15:]
        order = [row.url for row in iter_fetch(items, concurrency=20)]
    last_fast = max(i for i, url in enumerate(order) if url == fast[0])
    slow_before = sum(1 for url in order[:last_fast] if url == slow[0])
    assert slow_before < len(slow) // 2
    assert limited.limited["k"].allowed == 15


# -- a hosts rule's concurrency, rate and retries ------------------------------------------


def test_a_hosts_rule_caps_that_hosts_requests_in_flight_and_its_retries(server):
    rules = {f"127.0.0.1:{server.port}": {"concurrency": 3, "retries": 1}}
    urls = [server.url("/limited/capped?rate=1000&burst=1000&delay=0.05")] * 30
    table = fetch_all(urls + [server.url("/flaky/r?fail=9&status=502")], concurrency=20,
                      hosts=rules, backoff=0.01)
    assert server.limited["capped"].most_concurrent == 3
    assert (table[30].status, table[30].attempts) == (502, 2)


def test_a_hosts_rule_rate_spaces_that_hosts_starts(server):
    """Six starts spaced by 1/20 s take at least a quarter of a second (a lower bound only)."""
    rules = {f"127.0.0.1:{server.port}": {"rate": 20}}
    before = time.monotonic()
    rows = fetch_all([server.url(f"/delay/0?n={n}") for n in range(6)], concurrency=6,
                     hosts=rules)
    assert time.monotonic() - before >= 5 / 20
    assert all(row.ok for row in rows)


# -- each row says why it waited ------------------------------------------------------------


def test_rows_say_how_long_they_waited_for_a_retry_after_and_how_many_429s(server):
    """The first row's 429 carries Retry-After: 1 and pauses the host; the row queued
    behind it waits for the pause, and says so."""
    first = server.url("/flaky/pause?fail=1&status=429&retry_after=1")
    table = fetch_all([first, server.url("/ok")], concurrency=1)
    assert (table[0].throttled, table[0].attempts, table[0].wait_reason) == (1, 2, "")
    assert table[1].wait_reason == "retry-after" and table[1].waited >= 0.9
    assert table[1].throttled == 0


def test_rows_of_a_rate_limited_run_say_rate(server):
    table = fetch_all([server.url(f"/ok?n={n}") for n in range(4)], rate=20, concurrency=4)
    assert {row.wait_reason for row in table[1:]} == {"rate"}
    assert table[3].waited >= 0.1  # two intervals of 1/20 s at least, before its start
    assert table[0].waited == 0.0


def test_the_new_columns_are_in_every_format(server, tmp_path):
    from batchfetch.cli import main
    from click.testing import CliRunner

    urls = tmp_path / "urls.txt"
    urls.write_text(server.url("/ok") + "\n")
    for fmt in ("csv", "jsonl", "json"):
        result = CliRunner().invoke(main, [str(urls), "-f", fmt, "-q"])
        assert result.exit_code == 0, result.output
        for column in ("waited", "wait_reason", "throttled"):
            assert column in result.stdout, (fmt, column)


def test_resume_continues_a_csv_written_before_the_new_columns_in_its_own_columns(server,
                                                                                   tmp_path):
    import csv
    import io

    from batchfetch.cli import main
    from batchfetch.results import ADDED_COLUMNS, COLUMNS
    from click.testing import CliRunner

    older = [name for name in COLUMNS if name not in ADDED_COLUMNS]
    urls = [server.url(f"/ok?n={n}") for n in range(3)]
    inputs = tmp_path / "urls.txt"
    inputs.write_text("\n".join(urls) + "\n")
    output = tmp_path / "rows.csv"
    first_row = dict.fromkeys(older, "")
    first_row.update(index="0", url=urls[0], method="GET", ok="true", status="200")
    with open(output, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=older)
        writer.writeheader()
        writer.writerow(first_row)
    result = CliRunner().invoke(main, [str(inputs), "--resume", "-o", str(output), "-q"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(output.read_text())))
    assert rows[0] == older
    assert len(rows) == 4 and all(len(row) == len(older) for row in rows)
    assert sorted(row[0] for row in rows[1:]) == ["0", "1", "2"]
    assert server.hits["/ok"] == 2


# -- adaptive=True: requests in flight from latency (TCP Vegas) ----------------------------


def _answer(pacer, latency, in_flight=4, host="h"):
    pacer.answered(host, started=10.0 - latency, now=10.0, status=200, error="",
                   in_flight=in_flight)


def test_adaptive_slow_start_doubles_each_round_until_latency_climbs():
    pacer = Pacer(window_cap=1000, adaptive=True)
    for _ in range(4):
        _answer(pacer, 0.02)  # the first answer sets the window: the 4 in flight
    pace = pacer.pace("h")
    assert pace.window == 8 and pace.slow_start  # one round of 4: doubled
    for _ in range(8):
        _answer(pacer, 0.02)
    assert pace.window == 16
    for _ in range(16):
        _answer(pacer, 0.05)  # 2.5 x the unloaded latency
    assert not pace.slow_start
    assert pace.window == int(32 * 0.02 / 0.05) + 2  # what keeps about two queued


def test_adaptive_keeps_two_to_four_requests_queued_one_step_per_round():
    pacer = Pacer(window_cap=1000, adaptive=True)
    _answer(pacer, 0.02, in_flight=1)  # unloaded: 20 ms, window 2 after the first round
    pace = pacer.pace("h")
    pace.slow_start, pace.window, pace.round_size, pace.credit = False, 10, 10, 0
    for _ in range(10):
        _answer(pacer, 0.04)  # 10 x (1 - 20/40) = 5 queued: too many
    assert pace.window == 9
    for _ in range(9):
        _answer(pacer, 0.024)  # 9 x (1 - 20/24) = 1.5 queued: room for one more
    assert pace.window == 10
    for _ in range(10):
        _answer(pacer, 0.03)  # 3.3 queued: held
    assert pace.window == 10


def test_adaptive_keeps_an_overloaded_backend_from_queueing_the_whole_run(server):
    """A backend of 4 workers at 20 ms and 100 requests in flight: without adaptive, all
    100 wait at the server; with it, once slow start is over, a few do (how many the
    server saw as each request arrived, over the second half of the run)."""
    urls = [server.url("/busy/fixed?workers=4&service=0.02")] * 300
    assert all(row.ok for row in fetch_all(urls, concurrency=100))
    assert server.backends["fixed"][2] == 100
    urls = [server.url("/busy/adaptive?workers=4&service=0.02")] * 300
    table = fetch_all(urls, concurrency=100, adaptive=True)
    assert all(row.ok for row in table)
    later = sorted(server.backends["adaptive"][3][150:])
    assert later[len(later) // 2] <= 16


def test_polite_is_robots_adaptive_and_four_per_host():
    from batchfetch import FetchOptions

    options = FetchOptions(polite=True)
    assert (options.follows_robots, options.adapts, options.host_limit) == (True, True, 4)
    assert (options.robots, options.adaptive, options.per_host) == (False, False, None)
    assert FetchOptions(polite=True, per_host=9).host_limit == 9
    assert options.replace(polite=False).host_limit == 16  # a preset, not a rewrite


def test_the_cli_takes_polite_and_adaptive(server, tmp_path):
    from batchfetch.cli import main
    from click.testing import CliRunner

    server.robots_txt = b"User-agent: *\nDisallow: /status/\n"
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{server.url('/ok')}\n{server.url('/status/200')}\n")
    for flags in (["--polite"], ["--adaptive", "--robots"]):
        result = CliRunner().invoke(main, [str(urls), "-f", "jsonl", "-q", *flags])
        errors = sorted((json.loads(line)["index"], json.loads(line)["error"])
                        for line in result.stdout.splitlines())
        assert errors == [(0, ""), (1, "robots")], flags


def test_the_last_row_of_a_host_says_how_long_it_waited_too(server):
    rules = {f"127.0.0.1:{server.port}": {"rate": 20}}
    table = fetch_all([server.url(f"/ok?n={n}") for n in range(5)], concurrency=5, hosts=rules)
    last = max(table, key=lambda row: row.waited)
    assert last.wait_reason == "rate" and last.waited >= 3 / 20
    assert sorted(row.wait_reason for row in table).count("rate") == 4


def test_a_hosts_rule_may_allow_more_in_flight_than_per_host(server):
    rules = {f"127.0.0.1:{server.port}": {"concurrency": 6}}
    urls = [server.url("/limited/wide?rate=1000&burst=1000&delay=0.05")] * 30
    assert all(row.ok for row in fetch_all(urls, concurrency=20, per_host=2, hosts=rules))
    assert server.limited["wide"].most_concurrent == 6


def test_a_rate_limited_hosts_backlog_does_not_fill_the_look_ahead():
    """With max_pending=10, a host limited to 5 requests/s would soon own all ten places
    and the healthy host's items would wait behind it; its items give their places back."""
    with LoopbackServer() as limited, LoopbackServer() as healthy:
        slow = [limited.url(f"/limited/k?rate=5&burst=1&delay=0&every=0&n={n}")
                for n in range(20)]
        fast = [healthy.url(f"/delay/0.01?n={n}") for n in range(100)]
        items = [url for pair in zip(slow, fast[:20]) for url in pair] + fast[20:]
        order = [row.url for row in iter_fetch(items, concurrency=10, max_pending=10)]
    last_fast = max(order.index(url) for url in fast)
    assert sum(1 for url in order[:last_fast] if url in slow) < len(slow) // 2
