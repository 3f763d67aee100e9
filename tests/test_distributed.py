"""broker=: a batch fetched by real batchfetch-worker processes through a real redis-server,
with the guarantees of a local run (issue 18)."""
import base64
import json
import os
import signal
import subprocess
import sys
import time

import gevent
import gevent.server
import pytest

from batchfetch import BrokerError, FetchOptions, fetch_all, iter_fetch
from batchfetch.engines import distributed
from batchfetch.engines._broker import RunKeys
from batchfetch.engines._chunk_worker import WorkerProcess
from batchfetch.testing import refused_url

from cluster import RedisServer, Worker, stop_all

#: Fields that differ between two fetches of the same URL whatever the engine.
TIMING = ("elapsed", "waited")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def workers(redis_server, tmp_path_factory):
    """Two workers on database 0, shared by the tests that kill nothing."""
    directory = tmp_path_factory.mktemp("workers")
    started = [Worker(redis_server.url(0), f"w{n}", directory) for n in (1, 2)]
    yield started
    stop_all([worker.process for worker in started])


def broker_options(redis_server, db=0, **options):
    return dict(broker=redis_server.url(db), chunk_size=3, lease=1.5, **options)


def same_fields(row):
    return {key: value for key, value in row.to_record(include_body=True, headers=True).items()
            if key not in TIMING}


def test_rows_are_those_of_a_local_run(server, redis_server, workers):
    items = [server.url("/ok"), "not a url", server.url("/status/404"),
             {"url": server.url("/echo"), "method": "POST", "json": {"n": 1}, "id": "rpc"},
             server.url("/fault/reset"), server.url("/redirect/2"),
             {"url": server.url("/echo"), "data": b"\x00\xff", "method": "PUT"}] * 3
    # Each fault once more: a hang and a trickle past the read timeout, a refused port,
    # a truncated body and a 503 (the rows must match, one per input, whatever failed).
    items += [server.url("/fault/hang"), server.url("/fault/trickle?interval=2"),
              refused_url(), server.url("/fault/truncated"), server.url("/status/503")]
    options = dict(keep_body=True, response_headers=True, retries=0, timeout=(5, 1))
    local = fetch_all(items, **options)
    spread = fetch_all(items, **broker_options(redis_server, **options))
    assert [row.index for row in spread] == list(range(len(items)))
    assert [row.error for row in spread[:7]] == ["", "invalid_url", "http", "", "reset", "", ""]
    assert [row.error for row in spread[-5:]] == ["timeout", "timeout", "connect", "truncated",
                                                  "http"]
    for here, there in zip(local, spread):
        here_fields, there_fields = same_fields(here), same_fields(there)
        for fields in (here_fields, there_fields):  # the echo shows each connection's port
            fields.pop("headers")
            if fields["url"].endswith("/echo"):
                fields.pop("body")
                fields.pop("size")
        assert here_fields == there_fields
    assert json.loads(spread[3].body)["json"] == {"n": 1}
    assert json.loads(spread[6].body)["body"] == "\x00\ufffd" or spread[6].ok


def test_hooks_run_here_with_exceptions_rebuilt(server, redis_server, workers):
    seen, failures = [], []
    items = [server.url("/ok"), server.url("/status/503"), "ftp://nope"]
    table = fetch_all(items, on_result=lambda row: seen.append(row.index),
                      exception_handler=lambda item, exc: failures.append((item, exc)),
                      **broker_options(redis_server, retries=0))
    assert sorted(seen) == [0, 1, 2]
    assert {item for item, _ in failures} == {items[1], items[2]}
    by_item = dict(failures)
    assert type(by_item[items[1]]).__name__ == "HTTPStatusError"
    assert by_item[items[1]].status == 503
    assert table[1].status == 503


def test_bodies_saved_by_the_workers_where_the_driver_sees_them(server, redis_server, workers,
                                                                tmp_path):
    items = [server.url(f"/random/100?seed={n}") for n in range(7)]
    table = fetch_all(items, save_dir=str(tmp_path / "bodies"),
                      **broker_options(redis_server))
    assert all(row.ok for row in table)
    for row in table:
        assert os.path.getsize(row.path) == 100
    assert not [name for name in os.listdir(tmp_path / "bodies") if name.startswith(".")]


def test_since_and_changed_only_across_the_workers(server, redis_server, workers, tmp_path):
    """The validators travel with the inputs; the driver tells each row's change and keeps
    or drops the body a worker held (changed_only)."""
    from batchfetch.testing.routes import Page

    for n in range(6):
        server.pages[f"d{n}"] = Page(b"v1 %d" % n, etag=f'"{n}"' if n % 2 else "")
    items = [server.url(f"/page/d{n}") for n in range(6)]
    fetch_all(items, hash_body=True).write(tmp_path / "1.jsonl")
    server.pages["d2"].body = b"v2"
    server.pages["d3"] = Page(b"v2 3", etag='"3b"')
    table = fetch_all(items, since=str(tmp_path / "1.jsonl"), changed_only=True,
                      save_dir=str(tmp_path / "bodies"), **broker_options(redis_server))
    assert [row.change for row in table] == ["same", "same", "changed", "changed", "same",
                                             "same"]
    assert [row.status for row in table] == [200, 304, 200, 200, 200, 304]
    assert sorted(os.listdir(tmp_path / "bodies")) == \
        sorted(os.path.basename(row.path) for row in table if row.path)
    assert [bool(row.path) for row in table] == [False, False, True, True, False, False]


def take_chunk_message(url: str) -> dict:
    """Pop the next chunk message from Celery's queue in Redis, as a worker would."""
    import redis

    _, raw = redis.Redis.from_url(url).brpop(["batchfetch"])
    envelope = json.loads(raw)
    return json.loads(base64.b64decode(envelope["body"]))[0][0]


def test_a_save_dir_the_workers_do_not_share_is_refused(server, redis_server, tmp_path):
    """The worker that answers the probe writes it where the driver does not look (here
    this test plays that worker, with another directory): the run stops before any chunk,
    with a usage error's one line."""
    broker = redis_server.url(5)
    seen = []

    def worker_elsewhere():
        message = take_chunk_message(broker)
        seen.append(message["save_dir"])
        message["save_dir"] = str(tmp_path / "elsewhere")
        WorkerProcess(broker, 10, "far@away").run_chunk(message)

    player = gevent.spawn(worker_elsewhere)
    with pytest.raises(ValueError, match="is not storage the workers share: worker "
                                         "far@away wrote .batchfetch-probe-"):
        fetch_all([server.url("/ok")], save_dir=str(tmp_path / "bodies"),
                  **broker_options(redis_server, db=5))
    player.join()
    assert seen == [str(tmp_path / "bodies")]
    assert os.listdir(tmp_path / "bodies") == []  # the run's marker is gone


def test_a_relative_save_dir_is_the_driver_s_directory(server, redis_server, workers,
                                                       tmp_path, monkeypatch):
    """--save bodies: the workers run elsewhere, and wrote to their own ./bodies."""
    monkeypatch.chdir(tmp_path)
    table = fetch_all([server.url(f"/random/10?seed={n}") for n in range(6)],
                      save_dir="bodies", **broker_options(redis_server))
    assert all(row.ok and os.path.dirname(row.path) == str(tmp_path / "bodies")
               for row in table)
    assert all(os.path.getsize(row.path) == 10 for row in table)


def test_a_worker_that_cannot_write_fails_its_chunks_clearly(server, redis_server, tmp_path):
    """A worker that joins late and cannot write in save_dir (here a file is in the way):
    each input of its chunk gets a ``save`` row saying so."""
    (tmp_path / "blocked").write_text("not a directory")
    (tmp_path / "unshared").mkdir()  # writable, but without the driver's marker
    keys = RunKeys("latejoin")
    process = WorkerProcess(redis_server.url(3), 10, "late@host")
    process.client.set(keys.alive, json.dumps({"lease": 5}))
    message = {"protocol": 1, "version": distributed.__version__, "run": "latejoin", "chunk": 0,
               "options": FetchOptions(save_dir=str(tmp_path / "blocked" / "x")).to_dict(),
               "items": [[0, 0, server.url("/ok")], [1, 1, server.url("/json")]],
               "time_limit": 60}
    process.run_chunk(message)
    sent = [json.loads(raw) for raw in process.client.lrange(keys.rows, 0, -1)]
    rows = [row for message in sent for _, row in message.get("rows", [])]
    assert [row["error"] for row in rows] == ["save", "save"]
    assert "worker late@host cannot write in save_dir" in rows[0]["message"]
    assert sent[0]["e"] == "started" and sent[-1]["e"] == "done"
    process.client.delete(keys.rows)
    message.update(chunk=1, options=FetchOptions(save_dir=str(tmp_path / "unshared")).to_dict())
    process.run_chunk(message)
    sent = [json.loads(raw) for raw in process.client.lrange(keys.rows, 0, -1)]
    rows = [row for message in sent for _, row in message.get("rows", [])]
    assert [row["error"] for row in rows] == ["save", "save"]
    assert "does not see the driver's save_dir" in rows[0]["message"]
    process.client.flushdb()


def test_a_worker_of_another_version_refuses_the_chunk(server, redis_server, workers,
                                                       monkeypatch):
    monkeypatch.setattr(distributed, "__version__", "0.0.0-other")
    table = fetch_all([server.url("/ok"), server.url("/json")], **broker_options(redis_server))
    assert [row.error for row in table] == ["lost", "lost"]
    assert "and this run is batchfetch 0.0.0-other" in table[0].message


def test_options_that_cannot_travel_are_refused_before_anything_is_sent(redis_server):
    import requests.auth

    with pytest.raises(Exception, match="cannot travel"):
        fetch_all(["http://127.0.0.1:1/"], json={"tags": {"a", "b"}},
                  **broker_options(redis_server))
    with pytest.raises(ValueError, match="AuthBase object cannot travel"):
        FetchOptions(broker=redis_server.url(), auth=requests.auth.HTTPDigestAuth("a", "b"))
    with pytest.raises(ValueError, match="is not a Redis URL"):
        FetchOptions(broker="amqp://guest@127.0.0.1//")
    with pytest.raises(ValueError, match="workers and broker"):
        FetchOptions(broker=redis_server.url(), workers=2)


def test_a_killed_worker_s_chunks_come_back_and_each_input_has_one_row(server, redis_server,
                                                                        tmp_path, caplog):
    """kill -9 of a worker mid-chunk: its chunks are sent again once its lease lapses, and
    every index comes back exactly once (the recovery time is printed, not asserted)."""
    broker = redis_server.url(1)
    pair = [Worker(broker, f"k{n}", tmp_path, max_in_flight=4) for n in (1, 2)]
    items = [server.url(f"/delay/0.2?n={n}") for n in range(120)]
    killed_at = []

    def kill_first_worker(row):
        if not killed_at:
            pair[0].stop(signal.SIGKILL)
            killed_at.append(time.time())

    try:
        rows = list(iter_fetch(items, on_result=kill_first_worker, broker=broker,
                               chunk_size=6, lease=2, concurrency=4))
    finally:
        stop_all([worker.process for worker in pair])
    indexes = sorted(row.index for row in rows)
    assert indexes == list(range(len(items)))
    assert all(row.ok for row in rows), [row.message for row in rows if not row.ok]
    resent = [record.created for record in caplog.records if "lease lapsed" in record.message]
    assert resent, "the killed worker held a chunk"
    print(f"\nthe killed worker's first chunk was sent again {resent[0] - killed_at[0]:.1f} s "
          f"after the kill (lease 2 s); {len(resent)} chunks sent again")


def test_a_lapsed_chunk_does_not_send_a_post_again(server, redis_server, tmp_path):
    """A chunk whose worker died after starting it: its POSTs get ``lost`` rows (they may
    have been sent) unless retry_non_idempotent; its GETs are fetched."""
    broker = redis_server.url(2)
    pair = [Worker(broker, f"p{n}", tmp_path, max_in_flight=2) for n in (1, 2)]
    items = []
    for n in range(16):
        items.append({"url": server.url(f"/delay/0.3?post={n}"), "method": "POST"})
        items.append(server.url(f"/delay/0.3?get={n}"))
    killed = []

    def kill_first_worker(row):
        if not killed:
            pair[0].stop(signal.SIGKILL)
            killed.append(True)

    try:
        table = fetch_all(items, on_result=kill_first_worker, broker=broker, chunk_size=4,
                          lease=1.5, concurrency=2)
    finally:
        stop_all([worker.process for worker in pair])
    assert [row.index for row in table] == list(range(len(items)))
    lost = [row for row in table if row.error == "lost"]
    assert lost, "the killed worker held a started chunk with POSTs"
    assert all(row.method == "POST" and "not sent again" in row.message for row in lost)
    assert all(row.ok for row in table if row.method == "GET")


def test_the_broker_going_away_stops_the_run_with_the_rows_so_far(server, tmp_path):
    own_redis = RedisServer(tmp_path)
    worker = Worker(own_redis.url(), "lonely", tmp_path, max_in_flight=2)
    rows = []
    try:
        with pytest.raises(BrokerError, match="cannot reach the broker redis://127.0.0.1"):
            for row in iter_fetch([server.url(f"/delay/0.1?n={n}") for n in range(200)],
                                  broker=own_redis.url(), chunk_size=2, concurrency=2):
                rows.append(row)
                if len(rows) == 5:
                    own_redis.stop(signal.SIGKILL)
    finally:
        worker.stop()
        own_redis.stop()
    assert len(rows) >= 5 and all(row.ok for row in rows)
    assert len({row.index for row in rows}) == len(rows)


@pytest.mark.parametrize("what", ["a port that never answers", "a database out of range",
                                  "an HTTP server"])
def test_a_broker_that_is_not_redis_is_one_line_and_69(what, server, redis_server, child_env):
    listener = gevent.server.StreamServer(("127.0.0.1", 0), lambda sock, _: gevent.sleep(60))
    listener.start()
    broker = {"a port that never answers": f"redis://127.0.0.1:{listener.server_port}/0",
              "a database out of range": redis_server.url(99),
              "an HTTP server": f"redis://{server.base_url.split('://')[1]}/0"}[what]
    try:
        result = subprocess.run([sys.executable, "-m", "batchfetch", "--broker", broker,
                                 server.url("/ok")], capture_output=True, text=True,
                                env=child_env)
    finally:
        listener.stop()
    assert result.returncode == 69, result.stderr
    assert result.stderr.startswith("batchfetch: cannot reach the broker redis://127.0.0.1:")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_the_command_with_a_broker_gone_exits_69_with_its_rows(server, tmp_path, child_env):
    result = subprocess.run(
        [sys.executable, "-m", "batchfetch", "--broker", f"redis://:pw@127.0.0.1:{1}/0",
         server.url("/ok")], capture_output=True, text=True, env=child_env)
    assert result.returncode == 69, result.stderr
    assert result.stderr.strip().splitlines() == [line for line in [
        "batchfetch: cannot reach the broker redis://:***@127.0.0.1:1/0: Error 111 connecting "
        "to 127.0.0.1:1. Connection refused."]]
    assert "pw@" not in result.stderr


def test_ctrl_c_starts_no_chunk_afterwards_and_resume_completes(server, redis_server,
                                                                 workers, tmp_path, child_env):
    rows_file = tmp_path / "rows.jsonl"
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(server.url(f"/delay/0.1?n={n}\n") for n in range(200)))
    command = [sys.executable, "-m", "batchfetch", str(urls), "-o", str(rows_file),
               "--broker", redis_server.url(), "--chunk-size", "5", "-c", "4", "--lease", "1.5"]
    driver = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=child_env)
    while not rows_file.exists() or rows_file.read_text().count("\n") < 20:
        gevent.sleep(0.05)
    driver.send_signal(signal.SIGINT)
    _, stderr = driver.communicate()
    exited = time.time()
    assert driver.returncode == 130, stderr
    assert "interrupted:" in stderr and "add --resume to fetch the rest" in stderr
    served = server.requests_served
    gevent.sleep(3)  # two leases: a chunk started after the cancel would be fetching now
    print(f"\n{server.requests_served - served} requests reached the server after the "
          f"driver exited; {served} before")
    starts = [float(line.rsplit(" at ", 1)[1]) for worker in workers
              for line in worker.text().splitlines() if "started chunk" in line]
    assert starts and max(starts) < exited
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True,
                             env=child_env)
    assert resumed.returncode == 0, resumed.stderr
    indexes = [json.loads(line)["index"] for line in rows_file.read_text().splitlines()]
    assert sorted(indexes) == list(range(200))


def test_batchfetch_worker_refuses_a_broker_that_is_not_redis(child_env):
    result = subprocess.run([sys.executable, "-m", "batchfetch.cli.worker", "--broker",
                             "amqp://127.0.0.1//"], capture_output=True, text=True,
                            env=child_env)
    assert result.returncode == 2
    assert "is not a Redis URL" in result.stderr
    missing = subprocess.run([sys.executable, "-m", "batchfetch.cli.worker"],
                             capture_output=True, text=True, env=child_env)
    assert missing.returncode == 2 and "Missing option '--broker'" in missing.stderr


def test_workers_log_no_monkey_patch_warning(workers):
    for worker in workers:
        assert "MonkeyPatchWarning" not in worker.text()


def test_a_chunk_past_its_time_limit_ends_with_lost_rows(server, redis_server, workers,
                                                         tmp_path, child_env):
    result = subprocess.run(
        [sys.executable, "-m", "batchfetch", server.url("/ok"), server.url("/delay/5"),
         "--broker", redis_server.url(), "--chunk-size", "2", "--chunk-time-limit", "1",
         "-f", "jsonl"], capture_output=True, text=True, env=child_env)
    assert result.returncode == 1, result.stderr
    rows = sorted((json.loads(line) for line in result.stdout.splitlines()),
                  key=lambda row: row["index"])
    assert [row["error"] for row in rows] == ["", "lost"]
    assert rows[1]["message"].startswith("the chunk's time limit (1 s) passed before this "
                                         "input had a row on worker w")


def test_inputs_past_the_time_limit_are_not_sent_after_their_rows(server, redis_server,
                                                                  workers):
    """Their lost rows once went out while the worker's local run still sent them."""
    table = fetch_all([{"url": server.url(f"/delay/2?n={n}"), "method": "POST"}
                       for n in range(4)], concurrency=1, chunk_time_limit=1,
                      **dict(broker_options(redis_server), chunk_size=4))
    assert [row.error for row in table] == ["lost"] * 4
    served = server.requests_served
    gevent.sleep(3)  # what the local run had taken in would be sent by now
    assert server.requests_served == served <= 1


def test_rate_holds_for_the_whole_run_across_workers(server, redis_server, workers):
    """Two workers, rate 20: the server's bucket of 20 a second (bursts of 2) refuses
    none, where each worker pacing itself at 20 would send 40 a second; 200 requests
    take at least 199 intervals."""
    import redis

    items = [server.url(f"/limited/shared?rate=20&burst=2&delay=0&n={n}") for n in range(200)]
    client = redis.Redis.from_url(redis_server.url())
    grants: dict[bytes, bytes] = {}

    def count_grants(row):  # the run's keys go when it ends: read them as it goes
        grants.update(next((client.hgetall(key) for key in client.scan_iter(
            "batchfetch:*:rate:grants")), {}))

    started = time.monotonic()
    table = fetch_all(items, rate=20, throttled_retries=0, retries=0, concurrency=10,
                      on_result=count_grants, **dict(broker_options(redis_server),
                                                     chunk_size=10))
    took = time.monotonic() - started
    assert [row.status for row in table] == [200] * 200
    assert took >= 9.95
    per_second = [int(count) for count in grants.values()]
    assert sum(per_second) >= 199 and max(per_second) <= 20 + 1  # the burst: one
    print(f"\n200 requests at rate 20 on two workers: {took:.2f} s")


def test_each_worker_process_stays_within_its_max_in_flight(server, redis_server, workers):
    """-c 100 asks for more than the workers' --max-in-flight 20: the server never sees
    more than 2 x 20 at once."""
    items = [server.url(f"/busy/cap?workers=200&service=0.05&n={n}") for n in range(300)]
    table = fetch_all(items, concurrency=100, **dict(broker_options(redis_server),
                                                     chunk_size=30))
    assert all(row.ok for row in table)
    # Runs before this one on the same workers, now idle, take no part of the cap: one
    # worker alone reaches its 20 (the cap was once split between every run still open).
    assert 20 <= server.backends["cap"][2] <= 40


def test_retry_failed_fetches_the_failed_rows_again(server, redis_server, workers, tmp_path,
                                                    child_env):
    rows_file = tmp_path / "rows.jsonl"
    urls = [server.url(f"/flaky/again{n}?fail=1&status=500") for n in range(6)]
    command = [sys.executable, "-m", "batchfetch", *urls, "-o", str(rows_file), "-r", "0",
               "--broker", redis_server.url(), "--chunk-size", "2"]
    first = subprocess.run(command, capture_output=True, text=True, env=child_env)
    assert first.returncode == 1, first.stderr
    again = subprocess.run(command + ["--resume", "--retry-failed"], capture_output=True,
                           text=True, env=child_env)
    assert again.returncode == 0, again.stderr
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()]
    assert sorted(row["index"] for row in rows) == list(range(6))
    assert all(row["status"] == 200 for row in rows)


def test_batchfetch_worker_processes_runs_and_stops_its_children(server, redis_server, tmp_path,
                                                                 child_env):
    log = tmp_path / "supervisor.log"
    with open(log, "wb") as out:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "batchfetch.cli.worker", "--broker", redis_server.url(4),
             "--processes", "2", "--name", "sup@box", "--loglevel", "info"],
            stdout=out, stderr=subprocess.STDOUT, env=child_env)
    try:
        while log.read_bytes().count(b" ready.") < 2:
            assert supervisor.poll() is None, log.read_text()
            gevent.sleep(0.05)
        table = fetch_all([server.url(f"/ok?n={n}") for n in range(20)],
                          broker=redis_server.url(4), chunk_size=2)
        assert all(row.ok for row in table)
        text = log.read_text()
        assert "sup-1@box" in text and "sup-2@box" in text
        listing = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True,
                                 text=True).stdout.splitlines()
        commands = [line for line in listing if "sup-1@box" in line]
        assert len(commands) == 1 and "redis://" not in commands[0]
        os.kill(int(commands[0].split()[0]), signal.SIGKILL)  # it is started again
        while log.read_bytes().count(b" ready.") < 3:
            assert supervisor.poll() is None, log.read_text()
            gevent.sleep(0.05)
        assert "worker 1 exited with -9; starting it again" in log.read_text()
    finally:
        stop_all([supervisor])
    assert supervisor.returncode == 0
    assert not [line for line in subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True,
                                                text=True).stdout.splitlines()
                if "sup-1@box" in line or "sup-2@box" in line]


def test_files_and_bodies_travel_inline_and_capped(server, redis_server, workers, tmp_path,
                                                   monkeypatch):
    """-F @FILE is read here and sent inline (the workers, elsewhere, could not read it);
    bodies kept or sent through Redis are capped."""
    monkeypatch.chdir(tmp_path)  # a relative path: the workers run in another directory
    (tmp_path / "note.txt").write_bytes(b"from the driver\n")
    table = fetch_all([server.url("/echo")], method="POST", keep_body=True,
                      files={"note": {"path": "note.txt", "type": "text/plain"}},
                      **broker_options(redis_server))
    assert table[0].ok, table[0].message
    assert "from the driver" in table[0].json()["body"]
    assert 'filename="note.txt"' in table[0].json()["body"]
    with pytest.raises(ValueError, match="at most 10485760"):
        FetchOptions(broker=redis_server.url(), keep_body=True, max_bytes=None)
    with pytest.raises(ValueError, match="sends them with every chunk"):
        fetch_all([server.url("/echo")], data=b"x" * (2 * 1024 * 1024),
                  **broker_options(redis_server))
    big = fetch_all([{"url": server.url("/echo"), "data": "y" * (2 * 1024 * 1024)}],
                    **broker_options(redis_server))
    assert big[0].error == "invalid_request" and "at most 1048576 bytes" in big[0].message


def test_options_a_worker_cannot_take_give_error_rows_not_a_loop(server, redis_server,
                                                                 workers, tmp_path,
                                                                 monkeypatch):
    """A CA bundle that exists only where the driver runs (a relative path: the workers run
    in another directory): each row says so, once; the chunk is not sent round forever."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ca.pem").write_text("only here")
    table = fetch_all([server.url("/ok"), server.url("/json")], verify="ca.pem",
                      **broker_options(redis_server))
    assert [row.error for row in table] == ["invalid_request"] * 2
    assert "cannot run these options" in table[0].message and "ca.pem" in table[0].message


def test_a_url_that_is_not_utf8_comes_back_as_locally(server, redis_server, workers):
    url = server.url("/status/404?q=\udcff")
    local = fetch_all([url], retries=0)
    spread = fetch_all([url], retries=0, **broker_options(redis_server))
    assert (spread[0].status, spread[0].error, spread[0].url) == \
        (local[0].status, local[0].error, local[0].url)


def test_many_runs_in_a_row_share_each_worker_cleanly(server, redis_server, workers):
    """Past the runs a worker keeps open, the idle ones are closed while new chunks come:
    that once raised KeyError in a chunk, and its POSTs came back lost."""
    for run in range(6):
        table = fetch_all([{"url": server.url(f"/echo?run={run}&n={n}"), "method": "POST"}
                           for n in range(8)],
                          **dict(broker_options(redis_server), chunk_size=1))
        assert [row.error for row in table] == [""] * 8, [row.message for row in table]


def test_the_command_says_when_no_worker_takes_the_chunks(server, redis_server, child_env):
    driver = subprocess.Popen([sys.executable, "-m", "batchfetch", "--broker",
                               redis_server.url(6), server.url("/ok")],
                              stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                              env=child_env)
    line = driver.stderr.readline()  # the hint comes after 10 s, without -v
    driver.send_signal(signal.SIGINT)
    rest = driver.communicate()[1]
    assert line.startswith("batchfetch: no worker has taken a chunk in 1")
    assert "start `batchfetch-worker --broker redis://127.0.0.1:" in line
    assert driver.returncode == 130, rest


def test_a_late_copy_of_a_chunk_another_worker_holds_is_skipped(server, redis_server):
    """kombu's restore sweep may put back a chunk whose worker is alive and still holds it
    (a long chunk past the visibility timeout): the copy's worker sees the lease and skips
    it, so the chunk does not run twice."""
    keys = RunKeys("latecopy")
    holder = WorkerProcess(redis_server.url(7), 10, "holder@a")
    other = WorkerProcess(redis_server.url(7), 10, "other@b")
    holder.client.set(keys.alive, json.dumps({"lease": 5}))
    holder.received("batchfetch.latecopy.0")  # holds the lease from receipt
    message = {"protocol": 1, "version": distributed.__version__, "run": "latecopy",
               "chunk": 0, "options": FetchOptions().to_dict(),
               "items": [[0, 0, server.url("/ok")]], "time_limit": 60}
    other.run_chunk(message)
    sent = [json.loads(raw) for raw in holder.client.lrange(keys.rows, 0, -1)]
    assert [(event.get("e"), event.get("w")) for event in sent] == [("taken", "holder@a")]
    assert server.requests_served == 0
    # A copy that reaches the same process while the chunk runs there is skipped too, and
    # leaves the lease with the chunk (it once dropped it: the driver sent the chunk again).
    message["items"] = [[0, 0, server.url("/delay/1")]]
    running = gevent.spawn(holder.run_chunk, message)
    while b'"started"' not in b"".join(holder.client.lrange(keys.rows, 0, -1)):
        gevent.sleep(0.01)
    holder.run_chunk(dict(message))
    assert holder.client.get(keys.lease(0)).decode() == holder.token
    running.get()
    sent = [json.loads(raw) for raw in holder.client.lrange(keys.rows, 0, -1)]
    assert [event.get("e") for event in sent if "e" in event][-1] == "done"
    assert server.requests_served == 1
    holder.client.flushdb()


def test_a_high_shared_rate_keeps_its_pace(server, redis_server):
    """Rate 300 through the shared schedule, one process: slots came 10 ms after they were
    due, were dropped as late, and the run stalled (63 of 400 rows in 10 s at rate 200)."""
    import redis

    from batchfetch.engines.local import LocalEngine
    from batchfetch.scheduling.shared_rate import SharedStartRate

    client = redis.Redis.from_url(redis_server.url(8))
    engine = LocalEngine(FetchOptions(concurrency=16, rate=300),
                         SharedStartRate(client, "batchfetch:highrate:rate", 300))
    started = time.monotonic()
    try:
        rows = [event.row for event in engine.run(iter(enumerate(
            server.url(f"/ok?n={n}") for n in range(300))))]
    finally:
        engine.close()
    assert sorted(row.index for row in rows) == list(range(300))
    assert all(row.ok for row in rows)
    assert time.monotonic() - started >= 299 / 300
    grants = [int(count) for count in client.hgetall("batchfetch:highrate:rate:grants").values()]
    assert max(grants) <= 300 + 1 + 3  # the burst: one, and rate x 10 ms late
    client.flushdb()


def test_a_worker_started_before_its_broker_waits_for_it(tmp_path, child_env):
    from cluster import free_port

    port = free_port()
    log = tmp_path / "early.log"
    with open(log, "wb") as out:
        early = subprocess.Popen([sys.executable, "-m", "batchfetch.cli.worker", "--broker",
                                  f"redis://127.0.0.1:{port}/0", "--processes", "1",
                                  "--loglevel", "info"], stdout=out, stderr=subprocess.STDOUT,
                                 env=child_env)
    redis = None
    try:
        while b"waiting for the broker redis://127.0.0.1:" not in log.read_bytes():
            assert early.poll() is None, log.read_text()
            gevent.sleep(0.05)
        redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                                 stdout=subprocess.DEVNULL)
        while b" ready." not in log.read_bytes():
            assert early.poll() is None, log.read_text()
            gevent.sleep(0.05)
    finally:
        stop_all([early])
        if redis is not None:
            stop_all([redis])


@pytest.mark.parametrize("command", ["batchfetch", "batchfetch.cli.worker"])
def test_without_the_celery_extra_a_broker_says_what_to_install(command, child_env):
    """A base install (no [celery]) gave a ModuleNotFoundError traceback. Here the import of
    celery is made to fail as it would there (sys.modules['celery'] = None)."""
    entry = "batchfetch.cli:main" if command == "batchfetch" else "batchfetch.cli.worker:main"
    module, function = entry.split(":")
    args = ["--broker", "redis://127.0.0.1:1/0"] + (
        ["http://127.0.0.1:1/"] if command == "batchfetch" else ["--processes", "1"])
    script = (f"import sys; sys.modules['celery'] = None; sys.argv = ['x'] + {args!r}; "
              f"from {module} import {function}; {function}()")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=child_env)
    assert result.returncode in (1, 2), result.stderr
    assert "pip install 'batchfetch[celery]'" in result.stderr
    assert "Traceback" not in result.stderr
