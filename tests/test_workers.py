"""workers > 1: the batch shared by this process and worker processes, one stream of rows
with the same rules."""
import os
import signal

import pytest

from batchfetch import FetchOptions, HTTPStatusError, fetch_all, iter_fetch
from batchfetch.engines.processes import _worker_options as options_per_worker


def worker_pids() -> list[int]:
    """This process's live batchfetch worker processes, read from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read()
        except OSError:
            continue
        if (int(fields[1]) == os.getpid() and fields[0] != "Z"
                and b"batchfetch.engines._process_child" in command):
            pids.append(int(entry))
    return pids


def test_limits_are_divided_between_workers():
    options = options_per_worker(FetchOptions(workers=3, concurrency=64, per_host=4, rate=9.0,
                                              max_pending=30))
    assert (options.workers, options.concurrency, options.per_host, options.rate,
            options.max_pending) == (1, 22, 2, 3.0, 10)
    assert options_per_worker(FetchOptions(workers=2)).per_host is None


def test_one_row_per_input_in_input_order_with_ids_and_bodies(server):
    items = [server.url("/ok"), "not a url", server.url("/status/404"),
             {"url": server.url("/echo"), "method": "POST", "json": {"n": 1}, "id": "rpc"},
             server.url("/fault/reset")] * 20
    table = fetch_all(items, workers=2, concurrency=8, keep_body=True, retries=0)
    assert [row.index for row in table] == list(range(len(items)))
    assert [row.error for row in table[:5]] == ["", "invalid_url", "http", "", "reset"]
    assert table[3].id == "rpc" and b'"json": {"n": 1}' in table[3].body
    assert worker_pids() == []


def test_hooks_run_in_the_caller_with_the_exceptions(server):
    seen, handled = [], []
    items = [server.url("/ok"), server.url("/status/500"), "ftp://x"] * 4
    rows = list(iter_fetch(items, workers=2, retries=0, on_result=seen.append,
                           exception_handler=lambda item, exc: handled.append((item, exc))))
    assert seen == rows and len(rows) == 12
    assert len(handled) == 8
    statuses = [exc for item, exc in handled if item.endswith("/status/500")]
    assert len(statuses) == 4 and all(isinstance(e, HTTPStatusError) for e in statuses)


@pytest.mark.parametrize("workers", [2, 3])
def test_a_worker_that_dies_has_its_items_fetched_by_the_others(workers, shares_at_once,
                                                                 wait_until):
    """The server answers this process at once and holds worker processes' requests
    until the first worker to send one is killed: what it held is fetched by the others.
    With two, the one worker dies and this process fetches the rest."""
    import gevent.event
    import gevent.server

    foreign = []
    killed = gevent.event.Event()

    def hold_workers(port: int, own: bool) -> None:
        if not own:
            foreign.append(port)
            killed.wait()

    listener = gevent.server.StreamServer(("127.0.0.1", 0), _keep_alive_handler(hold_workers))
    listener.start()
    url = f"http://127.0.0.1:{listener.server_port}/"

    def items():
        count = 0
        while not foreign or count % 10:  # until a worker holds an item, then a few more
            count += 1
            yield url + str(count)

    try:
        rows = iter_fetch(items(), workers=workers, concurrency=6, max_pending=12,
                          retries=0)
        collected = []
        for row in rows:  # the rows go on (this process's) until a worker holds an item
            collected.append(row)
            if foreign:
                break
        victim = next(pid for pid in worker_pids() if _holds_port(pid, foreign[0]))
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in worker_pids())
        killed.set()
        collected += list(rows)
    finally:
        listener.stop()
    assert sorted(row.index for row in collected) == list(range(len(collected)))
    assert all(row.ok for row in collected)


def _holds_port(pid: int, port: int) -> bool:
    """Does process ``pid`` hold a TCP socket with local ``port``?"""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        with open(f"/proc/{pid}/net/tcp") as table:
            lines = table.readlines()[1:]
    except OSError:
        return False
    return any(int(fields[1].split(":")[1], 16) == port and fields[9] in inodes
               for fields in (line.split() for line in lines))


def test_an_item_that_cannot_be_pickled_is_fetched_by_this_process(server, shares_at_once):
    import threading

    items = [{"url": server.url("/ok"), "id": threading.Lock()} if n % 3 == 0
             else server.url("/ok") for n in range(60)]
    table = fetch_all(items, workers=2, concurrency=4, max_pending=8, retries=0)
    assert len(table) == 60 and all(row.ok for row in table)


def _own_socket_ports() -> set[int]:
    """Local TCP ports of this process's sockets (IPv4), from /proc."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].split(":")[1], 16))
    return ports


def _keep_alive_handler(before_answer):
    """A StreamServer handler answering each request on a connection with an empty 200
    once ``before_answer(port, own)`` returns (``own``: sent by this process)."""
    def handle(sock, address) -> None:
        with sock.makefile("rb") as stream:
            while True:
                while (line := stream.readline()) not in (b"", b"\r\n"):
                    pass
                if not line:
                    return
                before_answer(address[1], address[1] in _own_socket_ports())
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    return handle


class HoldingServer:
    """Holds this process's requests until one comes from another process (releasing the
    older of two held at once, so that this process's share can give up a slot)."""

    def __init__(self) -> None:
        import gevent.event
        import gevent.server

        self.foreign_seen = gevent.event.Event()
        self.held: list = []
        self.own = self.foreign = self.most_held = 0
        self.listener = gevent.server.StreamServer(
            ("127.0.0.1", 0), _keep_alive_handler(lambda port, own: self._answer(own)))

    def __enter__(self) -> "HoldingServer":
        self.listener.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.listener.stop()

    def items(self):
        """URLs until a request came from another process, and up to 9 more."""
        count = 0
        while not self.foreign_seen.is_set() or count % 10:
            count += 1
            yield f"http://127.0.0.1:{self.listener.server_port}/{count}"

    def _answer(self, own: bool) -> None:
        import gevent
        import gevent.event

        if not own:
            self.foreign += 1
            self.foreign_seen.set()
            return
        self.own += 1
        if self.foreign_seen.is_set():
            return
        release = gevent.event.Event()
        self.held.append(release)
        self.most_held = max(self.most_held, len(self.held))
        if len(self.held) == 2:
            self.held.pop(0).set()
        gevent.wait([release, self.foreign_seen], count=1)
        if release in self.held:
            self.held.remove(release)



def _burn_cpu(row) -> None:
    """An on_result hook that keeps this process busy (the hooks run in it)."""
    import time

    end = time.process_time() + 0.01
    while time.process_time() < end:
        pass


def test_a_busy_process_shares_the_batch_after_running_the_whole_concurrency():
    """Until a worker process takes a share, this process runs the whole concurrency (2
    requests at once here, not 1); once it is busy (the hook burns its CPU) and the worker
    has started, the worker is given a share and the items this process has not started.
    The server holds this process's requests and the input goes on until a request comes
    from the worker: the run ends only if the worker fetches (a hang is failed by
    pytest-timeout)."""
    with HoldingServer() as server:
        table = fetch_all(server.items(), workers=2, concurrency=2, max_pending=4,
                          retries=0, on_result=_burn_cpu)
    assert all(row.ok for row in table)
    assert server.own + server.foreign == len(table)
    assert server.most_held == 2 and server.foreign > 0


def test_a_batch_that_waits_on_the_network_stays_in_this_process(server):
    """This process is far from busy waiting for slow answers: no worker process starts,
    so the split costs nothing."""
    # max_pending 8: half of it waits where a worker could be handed it.
    rows = iter_fetch([server.url("/delay/0.5")] * 24, workers=2, concurrency=8,
                      max_pending=8, retries=0)
    workers_seen = []
    for count, row in enumerate(rows, start=1):
        assert row.ok
        if count in (1, 12, 24):
            workers_seen += worker_pids()
    assert count == 24 and workers_seen == []


def test_closing_early_stops_every_worker(server, wait_until, shares_at_once):
    """Waits with no limit of its own (2.5 s for the workers and 3 s for the connections
    were upper bounds on a loaded machine): a worker left running hangs the test, which
    pytest-timeout fails."""
    rows = iter_fetch([server.url("/fault/hang")] * 10 + [server.url("/ok")], workers=2,
                      concurrency=20, timeout=30)
    assert next(rows).ok
    wait_until(lambda: len(worker_pids()) == 1)  # and this process's own share
    rows.close()
    wait_until(lambda: worker_pids() == [])
    wait_until(lambda: server.open_connections == 0)


def test_input_errors_propagate_from_the_feeder(server):
    def broken():
        yield server.url("/ok")
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(iter_fetch(broken(), workers=2))


def test_cli_workers_flag(server):
    import json

    from click.testing import CliRunner

    from batchfetch.cli import main

    urls = "\n".join([server.url("/ok"), server.url("/status/404"), "not a url"] * 5)
    result = CliRunner().invoke(main, ["-q", "-f", "jsonl", "--workers", "2"], input=urls)
    assert result.exit_code == 1, result.output
    rows = sorted((json.loads(line) for line in result.stdout.splitlines()),
                  key=lambda row: row["index"])
    assert [row["index"] for row in rows] == list(range(15))
    assert [row["error"] for row in rows[:3]] == ["", "http", "invalid_url"]


def test_saved_bodies_are_named_by_input_index_across_workers(server, tmp_path):
    """Bug: each worker numbered its items from 0, so two rows shared one file."""
    urls = [server.url(f"/bytes/{n}") for n in range(1, 7)]
    table = fetch_all(urls, workers=2, save_dir=str(tmp_path))
    paths = [row.path for row in table]
    assert len(set(paths)) == 6 and sorted(os.listdir(tmp_path)) == sorted(
        os.path.basename(path) for path in paths)
    assert [os.path.getsize(path) for path in paths] == [1, 2, 3, 4, 5, 6]


def test_indexed_input_keeps_the_given_indexes(server, tmp_path):
    pairs = [(7, server.url("/ok")), (3, "not a url"), (12, server.url("/bytes/5"))]
    for workers in (1, 2):
        table = fetch_all(pairs, indexed=True, workers=workers, save_dir=str(tmp_path))
        assert [row.index for row in table] == [3, 7, 12]
        assert os.path.basename(table[2].path).startswith("00000012_")


def test_input_is_pulled_within_max_pending(counting_input):
    rows = iter_fetch(counting_input, workers=2, max_pending=10, concurrency=4)
    for count, _ in enumerate(rows, start=1):
        assert counting_input.pulled - count <= 10
        if count == 100:
            break
    rows.close()


def test_rows_from_worker_processes_carry_their_response_headers(server, shares_at_once):
    # Issue 17, item 3: the options travel to the workers, the headers back on the rows.
    urls = [server.url(f"/cookies/set?n={n}") for n in range(40)]
    table = fetch_all(urls, workers=2, concurrency=4, max_pending=8, retries=0,
                      response_headers=True, header_columns=["Set-Cookie"])
    assert [row.headers["Set-Cookie"] for row in table] == [f"n={n}; Path=/" for n in range(40)]
    records = table.to_records()
    assert records[7]["set_cookie"] == "n=7; Path=/" and "headers" in records[7]


def test_the_engine_says_how_many_requests_are_in_flight_across_processes(server,
                                                                          shares_at_once):
    """Issue 17, item 5: the progress bar's count, worker processes included."""
    from batchfetch import Fetcher

    seen = []
    with Fetcher(workers=2, concurrency=6, max_pending=12, retries=0) as fetcher:
        for _ in fetcher.iter_fetch([server.url("/delay/0.2")] * 60):
            own = fetcher.engine._shares.all[0].engine.in_flight
            seen.append((own, fetcher.in_flight))
        after = fetcher.in_flight
    assert any(total > own for own, total in seen), seen  # a worker's count is in it
    assert all(total <= 6 for _, total in seen), seen
    assert after == 0
