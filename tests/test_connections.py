"""Connections never exceed the concurrency (issue 16): with many hosts, a run closes an idle
connection of another host before it opens one, and worker processes share the budget.

Counted by the servers: many origins (one port each) on 127.0.0.1 note every connection a
request arrives on, and how many of their connections are open at that moment (a socket
whose client has closed it reads as end of file at once, even before its handler runs).
"""
import select
import socket

import gevent.event
import gevent.server
import pytest

from batchfetch import fetch_all

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class Origins:
    """``count`` servers on 127.0.0.1, sharing one tally of open connections."""

    def __init__(self, count: int, answer=None) -> None:
        #: ``answer(target)``: the chunks to send for a request line's target (bytes).
        self.answer = answer or (lambda target: [ANSWER])
        self.sockets: set[socket.socket] = set()
        self.most_open = 0
        self.accepted = 0
        self.requests = 0
        self.servers = [gevent.server.StreamServer(("127.0.0.1", 0), self._handle)
                        for _ in range(count)]

    def __enter__(self) -> "Origins":
        for server in self.servers:
            server.start()
        return self

    def __exit__(self, *exc_info) -> None:
        for server in self.servers:
            server.stop()

    def urls(self, count: int) -> list[str]:
        return [f"http://127.0.0.1:{self.servers[i % len(self.servers)].server_port}/{i}"
                for i in range(count)]

    def _still_open(self) -> int:
        readable, _, _ = select.select(list(self.sockets), [], [], 0)
        closed = 0
        for sock in readable:
            try:
                closed += sock.recv(1, socket.MSG_PEEK) == b""
            except OSError:
                closed += 1
        return len(self.sockets) - closed

    def _handle(self, sock: socket.socket, _address) -> None:
        self.accepted += 1
        self.sockets.add(sock)
        try:
            with sock.makefile("rb") as stream:
                while True:
                    line = stream.readline()
                    if not line:
                        return
                    while stream.readline() not in (b"\r\n", b""):
                        pass
                    self.requests += 1
                    self.most_open = max(self.most_open, self._still_open())
                    for chunk in self.answer(line.split()[1]):
                        sock.sendall(chunk)
        finally:
            self.sockets.discard(sock)


@pytest.mark.parametrize("workers", [1, 2])
def test_connections_never_exceed_the_concurrency_over_many_hosts(workers, both_paths,
                                                                  shares_at_once):
    with Origins(30) as origins:
        table = fetch_all(origins.urls(600), concurrency=6, workers=workers, retries=0)
    assert all(row.ok for row in table)
    assert origins.requests == 600
    assert origins.most_open <= 6
    assert origins.accepted > 6  # the budget was met by closing idle connections


def test_both_paths_share_one_budget():
    # A Host header of the item's own is something the native path hands to requests':
    # every other item goes each way, and the two kinds of connection count as one.
    with Origins(30) as origins:
        items = [{"url": url, "headers": {"Host": url.split("/")[2]}} if i % 2 else url
                 for i, url in enumerate(origins.urls(600))]
        table = fetch_all(items, concurrency=6, retries=0)
    assert all(row.ok for row in table)
    assert origins.requests == 600
    assert origins.most_open <= 6
    assert origins.accepted > 6


def test_one_host_keeps_its_connections_alive(both_paths):
    with Origins(1) as origins:
        table = fetch_all(origins.urls(300), concurrency=4, retries=0)
    assert all(row.ok for row in table)
    assert origins.accepted <= 4 and origins.most_open <= 4


def test_a_lowered_limit_holds_from_then_on(both_paths):
    """LocalEngine.limit (the process engine's own share gives up a worker's part with
    it): once ``within`` says so, no more attempts in flight or connections open than the
    new limit, the idle ones over it closed."""
    from batchfetch import FetchOptions, Limits
    from batchfetch.engines.local import LocalEngine

    with Origins(1) as origins:  # one host: nothing but the lowered limit closes any
        engine = LocalEngine(FetchOptions(concurrency=6, retries=0))
        events = engine.run(enumerate(origins.urls(600)))
        rows = [next(events).row for _ in range(100)]
        engine.limit(Limits(concurrency=2))
        while not engine.within(2):
            rows.append(next(events).row)
        origins.most_open = 0
        rows.extend(event.row for event in events)
        engine.close()
    assert len(rows) == 600 and all(row.ok for row in rows)
    assert 0 < origins.most_open <= 2


def test_a_redirect_to_another_origin_stays_within_the_budget(both_paths):
    """Each hop's connection is idle once its response is read (not only when the whole
    attempt ends), so a hop to another origin may close it to make room."""
    with Origins(2) as origins:
        second = origins.servers[1].server_port

        def answer(target):
            if target.startswith(b"/hop"):
                return [b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/end\r\n"
                        b"Content-Length: 0\r\n\r\n" % second]
            return [ANSWER]

        origins.answer = answer
        first = origins.servers[0].server_port
        table = fetch_all([f"http://127.0.0.1:{first}/hop{n}" for n in range(6)],
                          concurrency=1, retries=0)
    assert all(row.ok and row.final_url.endswith("/end") for row in table)
    assert origins.requests == 12 and origins.most_open == 1


def test_a_connection_closing_after_its_body_counts_until_the_body_is_read(both_paths):
    """http.client closes a connection whose answer says ``Connection: close`` before its
    body is read: it still counts while the body arrives on its socket."""
    release = gevent.event.Event()

    def answer(target):
        if target == b"/slow":
            yield b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nsl"
            release.wait()  # the rest of the body only once the others are done
            yield b"ow"
        else:
            yield ANSWER

    with Origins(6) as origins:
        origins.answer = answer
        urls = [f"http://127.0.0.1:{origins.servers[0].server_port}/slow"]
        urls += origins.urls(60)[1:]
        rows = []
        for event_row in _rows_then(fetch_rows(urls), after=59, then=release.set):
            rows.append(event_row)
    assert all(row.ok for row in rows) and len(rows) == 60
    assert origins.most_open <= 2


def fetch_rows(urls):
    from batchfetch import iter_fetch

    return iter_fetch(urls, concurrency=2, retries=0)


def _rows_then(rows, after, then):
    """Yield ``rows``; call ``then()`` once ``after`` have come."""
    for count, row in enumerate(rows, start=1):
        if count == after:
            then()
        yield row
