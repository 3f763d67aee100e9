"""The fault server for W5: a small asyncio HTTP/1.1 server with keep-alive on 127.0.0.1.

nginx cannot answer "503 once, then 200" per URL without a scripting module, so
this process does W5. It is asyncio protocols with no framework, to stay far
from being the bottleneck; the harness measures its CPU during every run.

Routes (a KEY is any unique path segment; state is per KEY for the process's life):
  /delay            wait DELAY s, then 200 with a BODY_SIZE-byte body
  /flaky/KEY        the first request: wait DELAY s, then 503; later: like /delay
  /trickle/KEY      the first request: 200 and Content-Length, then one body byte every
                    TRICKLE_INTERVAL s (BODY_SIZE bytes, about 10 s); later: like /delay
  /stats            JSON counters: connections accepted, requests, 503s, trickles

Run: python bench/faultserver.py --port PORT
"""
import argparse
import asyncio
import json
import signal

DELAY = 0.1
BODY = b"ok" + b"." * 37 + b"\n"  # 40 bytes: long enough to trickle for 10 s
BODY_SIZE = len(BODY)
TRICKLE_INTERVAL = 0.25
HEAD = ("HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {length}\r\n"
        "{connection}\r\n")


class Stats:
    """Counters the harness reads before and after each run."""

    def __init__(self) -> None:
        self.accepted = 0
        self.requests = 0
        self.failed_once = 0
        self.trickled = 0
        self.seen: set[bytes] = set()

    def first_time(self, key: bytes) -> bool:
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def head(status: str, length: int, keep_alive: bool) -> bytes:
    connection = "" if keep_alive else "Connection: close\r\n"
    return HEAD.format(status=status, length=length, connection=connection).encode()


class HTTPConnection(asyncio.Protocol):
    """One client connection: requests are answered one at a time, in order (no pipelining)."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.buffer = b""
        self.busy = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.stats.accepted += 1
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.next_request()

    def next_request(self) -> None:
        if self.busy or self.transport.is_closing():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        request, self.buffer = self.buffer[:end], self.buffer[end + 4:]
        request_line, _, headers = request.partition(b"\r\n")
        try:
            _method, target, version = request_line.split()
        except ValueError:
            self.transport.close()
            return
        keep_alive = version == b"HTTP/1.1" and b"connection: close" not in headers.lower()
        self.busy = True
        self.stats.requests += 1
        self.route(target.split(b"?", 1)[0], keep_alive)

    def route(self, path: bytes, keep_alive: bool) -> None:
        loop = asyncio.get_running_loop()
        if path == b"/stats":
            counters = {name: value for name, value in vars(self.stats).items() if name != "seen"}
            body = json.dumps(counters).encode()
            self.finish(head("200 OK", len(body), keep_alive) + body, keep_alive)
        elif path.startswith(b"/flaky/") and self.stats.first_time(path):
            self.stats.failed_once += 1
            body = b"try again\n"
            loop.call_later(DELAY, self.finish,
                            head("503 Service Unavailable", len(body), keep_alive) + body,
                            keep_alive)
        elif path.startswith(b"/trickle/") and self.stats.first_time(path):
            self.stats.trickled += 1
            self.transport.write(head("200 OK", BODY_SIZE, keep_alive))
            loop.call_later(TRICKLE_INTERVAL, self.trickle, 0, keep_alive)
        else:
            loop.call_later(DELAY, self.finish, head("200 OK", BODY_SIZE, keep_alive) + BODY,
                            keep_alive)

    def trickle(self, sent: int, keep_alive: bool) -> None:
        if self.transport.is_closing():
            return  # the client gave up (a deadline): good
        if sent == BODY_SIZE - 1:
            self.finish(BODY[sent:], keep_alive)
            return
        self.transport.write(BODY[sent:sent + 1])
        asyncio.get_running_loop().call_later(TRICKLE_INTERVAL, self.trickle, sent + 1,
                                              keep_alive)

    def finish(self, data: bytes, keep_alive: bool) -> None:
        if self.transport.is_closing():
            return
        self.transport.write(data)
        self.busy = False
        if keep_alive:
            self.next_request()
        else:
            self.transport.close()


async def serve_until_stopped(protocol, hosts, port: int) -> None:
    """Serve ``protocol`` on ``hosts`` (an address or a list) and ``port`` until SIGTERM or
    SIGINT."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(protocol, hosts, port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        await stop.wait()


async def serve(port: int) -> None:
    stats = Stats()
    await serve_until_stopped(lambda: HTTPConnection(stats), "127.0.0.1", port)


def main() -> None:
    parser = argparse.ArgumentParser(description="the W5 fault server (loopback only)")
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
