"""The pushback server for W8-W10 (issue 14): rate limits, an overloaded backend, counts per run.

One asyncio process listening on 127.0.0.1 .. 127.0.0.HOSTS at one port, with the fault
server's HTTP/1.1 keep-alive connection handling (faultserver.HTTPConnection) and routes
of its own. Every 200 carries the fault server's 40-byte body.

  /limited  a token bucket per local address (the host the client dialled): RATE tokens
            a second, BURST at most. With a token: wait LIMITED_DELAY s, then 200. Without
            one: 429 at once, every other 429 of that bucket with ``Retry-After: 1``.
  /queue    an overloaded backend: WORKERS workers serve one FIFO queue, SERVICE s each;
            a request still queued QUEUE_LIMIT s after it arrived is answered 504 then.
  /delay    wait DELAY s, then 200: W10's healthy hosts.
  /reset    start a new run: zero the run's counts and refill every bucket.
  /stats    JSON: connections accepted since start, and the run's counts (below).

A run's counts: requests by route; 429s and how many had Retry-After; 504s, and those
to requests that arrived more than a second after the run's first one (a 504 comes
QUEUE_LIMIT s after its request, so "no 504s after the first second" can only mean by
arrival); the served latency of every 200 (queue wait + service: percentiles and the
count); and the times, in seconds after the run's first request, of its last response
and of its last response to a /delay host.

Run: python bench/paceserver.py --port PORT --hosts 50 --rate 100 --burst 10
         --limited-delay 0.05 --workers 10 --service 0.05 --queue-limit 2 --delay 0.1
"""
import argparse
import asyncio
import collections
import json

from faultserver import BODY, HTTPConnection, head, serve_until_stopped

ROUTES = (b"/limited", b"/queue", b"/delay")


def _percentile(ordered: list[float], share: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None for no values)."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


class RunCounts:
    """What one run (from one /reset to the next) drew from the server."""

    def __init__(self) -> None:
        self.first: float | None = None  # loop time of the run's first request
        self.requests: collections.Counter[str] = collections.Counter()
        self.ok = 0
        self.limited = 0           # 429s
        self.retry_after = 0       # of which with Retry-After
        self.timed_out = 0         # 504s
        self.late_timed_out = 0    # 504s to requests that arrived more than 1 s into the run
        self.latencies: list[float] = []
        self.last_response: float | None = None
        self.last_healthy: float | None = None
        # (arrived, answered) of every /limited request, in seconds into the run: what
        # share of a client's concurrency the rate-limited hosts held (W10's profile).
        self.limited_spans: list[tuple[float, float]] = []

    def arrived(self, route: bytes, now: float) -> None:
        if self.first is None:
            self.first = now
        self.requests[route.decode()] += 1

    def answered(self, now: float) -> float:
        """Note a response sent at ``now``; returns its time into the run."""
        self.last_response = now - self.first
        return self.last_response

    def limited_in_flight(self, until: float | None) -> float | None:
        """Mean /limited requests in flight at the server from the run's start to ``until``."""
        if not until:
            return None
        busy = sum(max(0.0, min(end, until) - start) for start, end in self.limited_spans)
        return busy / until

    def as_dict(self) -> dict:
        ordered = sorted(self.latencies)
        return {
            "requests": sum(self.requests.values()), "by_route": dict(self.requests),
            "ok": self.ok, "429": self.limited, "429_retry_after": self.retry_after,
            "504": self.timed_out, "504_arrived_after_1s": self.late_timed_out,
            "latency_count": len(ordered),
            "latency_p50": _percentile(ordered, 0.50), "latency_p90": _percentile(ordered, 0.90),
            "latency_p99": _percentile(ordered, 0.99),
            "latency_max": ordered[-1] if ordered else None,
            "last_response": self.last_response, "last_healthy": self.last_healthy,
            "limited_in_flight": self.limited_in_flight(self.last_healthy),
        }


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; a request without a token is refused."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = float(burst), now
        self.refused = 0

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.refused += 1
        return False


class Job:
    """A request waiting for (or being served by) the backend."""

    __slots__ = ("connection", "keep_alive", "arrived", "timer", "expired")

    def __init__(self, connection: "PaceConnection", keep_alive: bool, arrived: float) -> None:
        self.connection, self.keep_alive, self.arrived = connection, keep_alive, arrived
        self.timer: asyncio.TimerHandle | None = None
        self.expired = False


class Backend:
    """``workers`` workers taking jobs from one FIFO queue, ``service`` seconds each.

    A job still queued ``limit`` seconds after it arrived is answered 504 then, as a
    gateway in front of a saturated backend does; expired jobs stay in the deque and
    are skipped when they reach its head.
    """

    def __init__(self, state: "ServerState", workers: int, service: float, limit: float) -> None:
        self.state, self.idle, self.service, self.limit = state, workers, service, limit
        self.waiting: collections.deque[Job] = collections.deque()

    def submit(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        if self.idle:
            self.idle -= 1
            loop.call_later(self.service, self.served, job)
        else:
            self.waiting.append(job)
            job.timer = loop.call_later(self.limit, self.expire, job)

    def expire(self, job: Job) -> None:
        job.expired = True
        job.connection.gateway_timeout(job.keep_alive, job.arrived)

    def served(self, job: Job) -> None:
        job.connection.served(job.keep_alive, job.arrived)
        while self.waiting:
            queued = self.waiting.popleft()
            # Nobody is left to answer on a closed connection: the worker moves on.
            if queued.expired or queued.connection.transport.is_closing():
                continue
            queued.timer.cancel()
            asyncio.get_running_loop().call_later(self.service, self.served, queued)
            return
        self.idle += 1


class ServerState:
    """Shared by every connection: the counters, the buckets, the backend, the settings."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.accepted = 0   # faultserver.HTTPConnection counts these two
        self.requests = 0
        self.run = RunCounts()
        self.buckets: dict[str, TokenBucket] = {}
        self.backend = Backend(self, args.workers, args.service, args.queue_limit)

    def reset(self) -> None:
        self.run = RunCounts()
        self.buckets.clear()

    def bucket(self, host: str, now: float) -> TokenBucket:
        bucket = self.buckets.get(host)
        if bucket is None:
            bucket = self.buckets[host] = TokenBucket(self.args.rate, self.args.burst, now)
        return bucket


def _responses(keep_alive: bool) -> dict[str, bytes]:
    """Every response this server sends, built once."""
    too_many = b"slow down\n"
    timeout = b"queued too long\n"
    limited = head("429 Too Many Requests", len(too_many), keep_alive)
    return {
        "ok": head("200 OK", len(BODY), keep_alive) + BODY,
        "429": limited + too_many,
        # head() ends with the blank line: the extra header goes in before it.
        "429_retry_after": limited[:-2] + b"Retry-After: 1\r\n\r\n" + too_many,
        "504": head("504 Gateway Timeout", len(timeout), keep_alive) + timeout,
    }


RESPONSES = {keep_alive: _responses(keep_alive) for keep_alive in (True, False)}


class PaceConnection(HTTPConnection):
    """One client connection; its local address names the host whose bucket it draws on."""

    stats: ServerState

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.host = transport.get_extra_info("sockname")[0]

    def route(self, path: bytes, keep_alive: bool) -> None:
        state = self.stats
        loop = asyncio.get_running_loop()
        now = loop.time()
        if path not in ROUTES:
            self.control(path, keep_alive)
            return
        state.run.arrived(path, now)
        if path == b"/queue":
            state.backend.submit(Job(self, keep_alive, now))
        elif path == b"/delay":
            loop.call_later(state.args.delay, self.healthy, keep_alive, now)
        elif state.bucket(self.host, now).take(now):
            loop.call_later(state.args.limited_delay, self.limited_served, keep_alive, now)
        else:
            run = state.run
            run.limited += 1
            with_header = state.buckets[self.host].refused % 2 == 1
            run.retry_after += with_header
            run.answered(now)
            self.finish(RESPONSES[keep_alive]["429_retry_after" if with_header else "429"],
                        keep_alive)

    def control(self, path: bytes, keep_alive: bool) -> None:
        if path == b"/reset":
            self.stats.reset()
            body = b"reset\n"
            status = "200 OK"
        elif path == b"/stats":
            body = json.dumps({"accepted": self.stats.accepted,
                               "run": self.stats.run.as_dict()}).encode()
            status = "200 OK"
        else:
            body = b"no such route\n"
            status = "404 Not Found"
        self.finish(head(status, len(body), keep_alive) + body, keep_alive)

    def served(self, keep_alive: bool, arrived: float) -> None:
        if self.transport.is_closing():
            return
        run = self.stats.run
        now = asyncio.get_running_loop().time()
        run.ok += 1
        run.latencies.append(now - arrived)
        run.answered(now)
        self.finish(RESPONSES[keep_alive]["ok"], keep_alive)

    def limited_served(self, keep_alive: bool, arrived: float) -> None:
        if self.transport.is_closing():
            return
        self.served(keep_alive, arrived)
        run = self.stats.run
        run.limited_spans.append((arrived - run.first, run.last_response))

    def healthy(self, keep_alive: bool, arrived: float) -> None:
        if self.transport.is_closing():
            return
        self.served(keep_alive, arrived)
        self.stats.run.last_healthy = self.stats.run.last_response

    def gateway_timeout(self, keep_alive: bool, arrived: float) -> None:
        if self.transport.is_closing():
            return
        run = self.stats.run
        run.timed_out += 1
        run.late_timed_out += arrived - run.first > 1.0
        run.answered(asyncio.get_running_loop().time())
        self.finish(RESPONSES[keep_alive]["504"], keep_alive)


async def serve(args: argparse.Namespace) -> None:
    state = ServerState(args)
    addresses = [f"127.0.0.{host}" for host in range(1, args.hosts + 1)]
    await serve_until_stopped(lambda: PaceConnection(state), addresses, args.port)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="the W8-W10 pushback server (loopback only)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hosts", type=int, required=True,
                        help="listen on 127.0.0.1 .. 127.0.0.HOSTS")
    parser.add_argument("--rate", type=float, required=True,
                        help="/limited: tokens per second of each host's bucket")
    parser.add_argument("--burst", type=int, required=True,
                        help="/limited: tokens each bucket holds at most")
    parser.add_argument("--limited-delay", type=float, required=True,
                        help="/limited: seconds before a 200")
    parser.add_argument("--workers", type=int, required=True, help="/queue: backend workers")
    parser.add_argument("--service", type=float, required=True,
                        help="/queue: seconds a worker spends on a request")
    parser.add_argument("--queue-limit", type=float, required=True,
                        help="/queue: seconds in the queue before a 504")
    parser.add_argument("--delay", type=float, required=True,
                        help="/delay: seconds before a 200")
    return parser.parse_args()


def main() -> None:
    asyncio.run(serve(parse_args()))


if __name__ == "__main__":
    main()
