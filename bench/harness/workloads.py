"""The workloads: what each one fetches, from which server, at what concurrency, with whom.

A workload writes its URL file once per run (W5's URLs carry the run's tag, so the
fault server's "503 once" state is fresh for every run). W8-W10 (issue 14) run against
the pace server, whose counts start afresh with every run.
"""
from __future__ import annotations

import dataclasses
import os

from .servers import HOSTS, MANY_HOSTS

#: The tools batchfetch is compared with.
PEERS = ("grequests_plain", "grequests_session", "requests_threads", "aiohttp",
         "reqstorm_fixed", "curl", "geventhttpclient_plain")
#: reqstorm 2.5 with ``concurrency="auto", rate_limit="auto"``: a peer that paces itself
#: from the server's answers, for the workloads where pace is the point (W8-W10).
AUTO_PEERS = ("reqstorm_auto",)
#: Every client, in the order the report lists them (batchfetch first: the ratios' base).
#: ``batchfetch_workers`` is batchfetch with a worker process per core: it runs on W1 (the
#: client's CPU is the limit) and on W2, W4 and W6, where issue 16 asks that it cost no
#: time against one process.
ALL_CLIENTS = ("batchfetch", "batchfetch_workers", "batchfetch_adaptive", *PEERS,
               "reqstorm_auto")
#: The clients of W2, W4 and W6: batchfetch in one process and with workers, every peer.
WORKER_RUNS = ("batchfetch", "batchfetch_workers", *PEERS)
#: The workers ``batchfetch_workers`` runs with: "all cores", as issue 6 puts it.
WORKERS = os.cpu_count() or 1
#: Clients that read their input lazily and hold no per-URL state: the only ones that
#: can run a million URLs in bounded memory.
STREAMING_CLIENTS = ("batchfetch", "aiohttp", "reqstorm_fixed", "curl")
#: The server's delay on /delay and the fault server's routes, in seconds.
DELAY = 0.1
#: W6's delay (nginx's /delay50), in seconds.
SHORT_DELAY = 0.05
#: W5: every FLAKY_EVERY-th URL answers 503 once; every TRICKLE_EVERY-th trickles once.
FLAKY_EVERY = 20     # 5 %
TRICKLE_EVERY = 100  # 1 %
#: W5: the per-attempt deadline given to clients that have one, and their retries.
FAULT_DEADLINE = 1.0
FAULT_RETRIES = 3
#: W8 and W10's rate-limited hosts: a token bucket per host (requests/s, burst) and the
#: delay of an allowed request; a refused one is answered 429 at once.
LIMIT_RATE = 100
LIMIT_BURST = 10
LIMITED_DELAY = 0.05
#: W9's overloaded backend: workers, seconds each spends per request, and how long a
#: request may wait in its queue before the answer is 504. Capacity: workers / service.
BACKEND_WORKERS = 10
BACKEND_SERVICE = 0.05
QUEUE_LIMIT = 2.0
#: W10: the hosts (of 127.0.0.1-127.0.0.50) that are rate-limited as W8's host is, and
#: their share of the URLs. Issue 14 asked for W4's round-robin, which sends each host
#: 40 requests/s at C=200, under a 100/s bucket: no client ever drew a 429. At 30 %, each
#: limited host is asked for 120/s and its 600 URLs take at least 6 s.
LIMITED_HOSTS = (10, 20, 30, 40, 50)
W10_LIMITED_SHARE = 0.3
#: W8-W10: retries for the peers that have a retry setup, as a careful script against a
#: rate-limited API has; batchfetch runs with its defaults (which retry, 3 times today).
PACE_RETRIES = 3
#: Who runs W8-W10: batchfetch, the self-pacing peer, and the fastest fixed-pace peers.
PACE_CLIENTS = ("batchfetch", *AUTO_PEERS, "aiohttp", "curl")


def pace_server_settings() -> dict[str, float]:
    """The pace server's command-line options, from the constants above."""
    return {"rate": LIMIT_RATE, "burst": LIMIT_BURST, "limited_delay": LIMITED_DELAY,
            "workers": BACKEND_WORKERS, "service": BACKEND_SERVICE,
            "queue_limit": QUEUE_LIMIT, "delay": DELAY}


@dataclasses.dataclass(frozen=True)
class Workload:
    """One workload: ``count`` GETs at ``concurrency``, ``repeats`` runs of every client."""

    name: str
    title: str
    meaning: str
    count: int
    concurrency: int
    server: str              # "nginx", "faults" or "pace"
    path: str                # "/1k", "/delay", "/limited", "/queue", or "faults" (W5's mix)
    hosts: int = 1
    delay: float = 0.0       # seconds the server waits per request (for the ideal time)
    clients: tuple[str, ...] = ("batchfetch", *PEERS)
    repeats: int = 3
    stream: bool = False     # streaming clients read the URL file lazily
    faults: bool = False     # W5's fault URLs, tagged afresh for every run
    retries: int | None = None      # given to the clients that have a retry setup,
    keep_defaults: tuple[str, ...] = ()  # except these, which retry by default already
    deadline: float | None = None   # per-attempt cap, for the clients that have one
    timeout: float = 300.0   # a run taking longer is killed and reported as such
    body_size: int = 1024    # bytes every correct response carries
    capacity: float | None = None   # requests/s the server allows or serves at most
    limited: tuple[int, ...] = ()   # hosts whose URLs are "/limited" instead of ``path``
    healthy_only: bool = False      # leave the ``limited`` hosts out (W10's control)
    limited_share: float = 0.0      # the share of URLs that go to the ``limited`` hosts
                                    # (0: round-robin over all hosts, as W4)
    adaptive: bool = False          # batchfetch runs with adaptive=True
    probe: bool = False             # measure the server's unloaded latency before each run

    @property
    def ideal(self) -> float | None:
        """Wall time if every request took exactly the server's delay: count / C * delay
        (a rate-limited host's URLs at LIMITED_DELAY), or the server's rate when that is
        the tighter bound: count / capacity, each limited host's URLs / LIMIT_RATE."""
        hosts = self.host_numbers()
        limited = [host for host in hosts if host in self.limited]
        if self.limited_share and limited:
            to_limited = self.count * self.limited_share
            per_limited = to_limited / len(limited)
            busy = (self.count - to_limited) * self.delay + to_limited * LIMITED_DELAY
        else:
            per_limited = self.count / len(hosts)
            busy = per_limited * ((len(hosts) - len(limited)) * self.delay
                                  + len(limited) * LIMITED_DELAY)
        times = [busy / self.concurrency,
                 self.count / self.capacity if self.capacity else 0.0,
                 per_limited / LIMIT_RATE if limited else 0.0]
        return max(times) or None

    @property
    def healthy(self) -> bool:
        """A healthy run needs no more connections than the concurrency."""
        return not self.faults and self.server == "nginx"

    def host_numbers(self) -> list[int]:
        """The N of 127.0.0.N the URLs go to, round-robin."""
        return [host for host in range(1, self.hosts + 1)
                if not (self.healthy_only and host in self.limited)]

    def urls(self, server, tag: str):
        """The URLs of one run, in order (a generator: W3's million are written, not held)."""
        hosts = self.host_numbers()
        limited = [host for host in hosts if host in self.limited]
        healthy = [host for host in hosts if host not in self.limited]
        tenths = round(self.limited_share * 10)
        for index in range(self.count):
            if tenths and limited:  # the first ``tenths`` of every ten URLs are limited ones
                turn, place = divmod(index, 10)
                group, number = ((limited, turn * tenths + place) if place < tenths else
                                 (healthy, turn * (10 - tenths) + place - tenths))
                host = group[number % len(group)]
            else:
                host = hosts[index % len(hosts)]
            if host in self.limited:
                yield server.url("/limited", host=host)
            elif self.path != "faults":
                yield server.url(self.path, host=host)
            elif self.faults and index % FLAKY_EVERY == 7:
                yield server.url(f"/flaky/{tag}-{index}")
            elif self.faults and index % TRICKLE_EVERY == 3:
                yield server.url(f"/trickle/{tag}-{index}")
            else:
                yield server.url("/delay")

    def write_urls(self, server, tag: str, path: str) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            for url in self.urls(server, tag):
                handle.write(url + "\n")


def define(quick: bool = False) -> dict[str, Workload]:
    """Every workload by name; ``quick`` shrinks counts and runs each client once."""
    def n(full: int, small: int) -> int:
        return small if quick else full
    repeats = 1 if quick else 3
    fault_mix = "5 % of URLs answer 503 once, 1 % trickle 40 bytes over 10 s once"
    workloads = [
        Workload("W1", "throughput", "GETs of a 1 KiB static file: per-request overhead",
                 n(20_000, 2_000), 64, "nginx", "/1k", repeats=repeats, timeout=600,
                 clients=ALL_CLIENTS),
        Workload("W2", "latency-bound",
                 "GETs the server answers after 100 ms: can the client keep C requests in flight",
                 n(10_000, 1_000), 200, "nginx", "/delay", delay=DELAY, repeats=repeats,
                 body_size=3, clients=WORKER_RUNS),
        Workload("W3", "memory, 200k",
                 "GETs of 1 KiB streamed from a file: peak memory on a big input",
                 n(200_000, 20_000), 100, "nginx", "/1k", repeats=1, stream=True,
                 timeout=1200),
        Workload("W3M", "memory, 1M",
                 "the same with 1,000,000 URLs, streaming clients only: memory should stay flat",
                 n(1_000_000, 100_000), 100, "nginx", "/1k", repeats=1, stream=True,
                 clients=STREAMING_CLIENTS, timeout=2400),
        Workload("W4", "many hosts",
                 f"W2 spread round-robin over {HOSTS} hosts (127.0.0.1-127.0.0.{HOSTS})",
                 n(10_000, 1_000), 200, "nginx", "/delay", hosts=HOSTS, delay=DELAY,
                 repeats=repeats, body_size=3, clients=WORKER_RUNS),
        Workload("W6", "very many hosts",
                 f"GETs the server answers after {SHORT_DELAY * 1000:.0f} ms, round-robin "
                 f"over {MANY_HOSTS} hosts (127.0.0.1-127.0.0.{MANY_HOSTS}): more hosts than "
                 "requests in flight, so a client must close idle connections to stay "
                 "within C",
                 n(20_000, 2_000), 200, "nginx", "/delay50", hosts=MANY_HOSTS,
                 delay=SHORT_DELAY, repeats=repeats, body_size=3, clients=WORKER_RUNS),
        Workload("W7", "large bodies", "GETs of a 1 MiB static file: body streaming and memory",
                 n(1_000, 100), 16, "nginx", "/1m", repeats=repeats, body_size=1 << 20),
        Workload("W5", "faults", f"W2 where {fault_mix}; per-attempt deadline "
                 f"{FAULT_DEADLINE:g} s and {FAULT_RETRIES} retries where the client has them",
                 n(10_000, 1_000), 200, "faults", "faults", delay=DELAY, repeats=repeats,
                 faults=True, retries=FAULT_RETRIES, deadline=FAULT_DEADLINE, body_size=40),
        Workload("W5C", "faults control",
                 "W5's server and URLs with no faults: the fault server's own ceiling",
                 n(10_000, 1_000), 200, "faults", "faults", delay=DELAY, repeats=1,
                 body_size=40),
        Workload("W8", "rate-limited API",
                 f"one host with a token bucket of {LIMIT_RATE} requests/s, burst "
                 f"{LIMIT_BURST}: beyond it 429 at once, every other one with Retry-After: 1; "
                 f"{LIMITED_DELAY * 1000:.0f} ms per allowed request",
                 n(3_000, 600), 100, "pace", "/limited", delay=LIMITED_DELAY,
                 capacity=LIMIT_RATE, clients=PACE_CLIENTS, repeats=repeats,
                 retries=PACE_RETRIES, keep_defaults=("batchfetch",), body_size=40),
        Workload("W9", "overloaded backend",
                 f"{BACKEND_WORKERS} server workers at {BACKEND_SERVICE * 1000:.0f} ms per "
                 f"request (capacity {BACKEND_WORKERS / BACKEND_SERVICE:.0f}/s); a request "
                 f"queued longer than {QUEUE_LIMIT:g} s is answered 504; batchfetch with "
                 "adaptive=True",
                 n(3_000, 600), 200, "pace", "/queue", delay=BACKEND_SERVICE,
                 capacity=BACKEND_WORKERS / BACKEND_SERVICE, clients=PACE_CLIENTS,
                 repeats=repeats, retries=PACE_RETRIES, keep_defaults=("batchfetch",),
                 adaptive=True, probe=True, body_size=40),
        Workload("W10", "mixed hosts",
                 f"W4's shape ({DELAY * 1000:.0f} ms over {HOSTS} hosts) where "
                 f"{len(LIMITED_HOSTS)} hosts (127.0.0.{', .'.join(map(str, LIMITED_HOSTS))})"
                 " are rate-limited as W8's, each its own bucket, and get "
                 f"{W10_LIMITED_SHARE:.0%} of the URLs (so each is asked for more than its "
                 "rate)",
                 n(10_000, 1_000), 200, "pace", "/delay", hosts=HOSTS, delay=DELAY,
                 limited=LIMITED_HOSTS, limited_share=W10_LIMITED_SHARE,
                 clients=PACE_CLIENTS, repeats=repeats,
                 retries=PACE_RETRIES, keep_defaults=("batchfetch",), body_size=40),
        Workload("W10C", "mixed hosts control",
                 f"W10's URLs to its {HOSTS - len(LIMITED_HOSTS)} healthy hosts alone: "
                 "how soon the healthy rows finish with no rate-limited host beside them",
                 round(n(10_000, 1_000) * (1 - W10_LIMITED_SHARE)), 200, "pace",
                 "/delay", hosts=HOSTS, delay=DELAY, limited=LIMITED_HOSTS, healthy_only=True,
                 clients=PACE_CLIENTS, repeats=repeats, retries=PACE_RETRIES,
                 keep_defaults=("batchfetch",), body_size=40),
    ]
    return {workload.name: workload for workload in workloads}


#: What a plain ``python bench/run.py`` runs (about 15 minutes). W3 (about 18 minutes),
#: W3M (about 10 minutes, streaming clients only) and W8-W10C (issue 14's pace workloads,
#: about 15 minutes, W8's 30 s ideal the most of it) are opt-in: ``--workloads all``.
DEFAULT_WORKLOADS = ("W1", "W2", "W4", "W5", "W5C", "W6", "W7")
