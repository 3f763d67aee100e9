"""The workloads: what each one fetches, from which server, at what concurrency, with whom.

A workload writes its URL file once per run (W5's URLs carry the run's tag, so the
fault server's "503 once" state is fresh for every run).
"""
from __future__ import annotations

import dataclasses
import os

from .servers import HOSTS

#: The tools batchfetch is compared with.
PEERS = ("grequests_plain", "grequests_session", "requests_threads", "aiohttp", "curl")
#: Every client, in the order the report lists them (batchfetch first: the ratios' base).
#: ``batchfetch_workers`` is batchfetch with a worker process per core: it runs only where
#: the client's CPU is the limit (W1), since the latency-bound workloads gain nothing.
ALL_CLIENTS = ("batchfetch", "batchfetch_workers", *PEERS)
#: The workers ``batchfetch_workers`` runs with: "all cores", as issue 6 puts it.
WORKERS = os.cpu_count() or 1
#: Clients that read their input lazily and hold no per-URL state: the only ones that
#: can run a million URLs in bounded memory.
STREAMING_CLIENTS = ("batchfetch", "aiohttp", "curl")
#: The server's delay on /delay and the fault server's routes, in seconds.
DELAY = 0.1
#: W5: every FLAKY_EVERY-th URL answers 503 once; every TRICKLE_EVERY-th trickles once.
FLAKY_EVERY = 20     # 5 %
TRICKLE_EVERY = 100  # 1 %
#: W5: the per-attempt deadline given to clients that have one, and their retries.
FAULT_DEADLINE = 1.0
FAULT_RETRIES = 3


@dataclasses.dataclass(frozen=True)
class Workload:
    """One workload: ``count`` GETs at ``concurrency``, ``repeats`` runs of every client."""

    name: str
    title: str
    meaning: str
    count: int
    concurrency: int
    server: str              # "nginx" or "faults"
    path: str                # "/1k", "/delay", or "faults" for the W5 mix
    hosts: int = 1
    delay: float = 0.0       # seconds the server waits per request (for the ideal time)
    clients: tuple[str, ...] = ("batchfetch", *PEERS)
    repeats: int = 3
    stream: bool = False     # streaming clients read the URL file lazily
    faults: bool = False     # retries and deadline for the clients that have them
    timeout: float = 300.0   # a run taking longer is killed and reported as such
    body_size: int = 1024    # bytes every correct response carries

    @property
    def ideal(self) -> float | None:
        """Wall time if every request took exactly the server's delay: count / C * delay."""
        return self.count / self.concurrency * self.delay if self.delay else None

    @property
    def healthy(self) -> bool:
        """A healthy run needs no more connections than the concurrency."""
        return not self.faults and self.server == "nginx"

    def urls(self, server, tag: str):
        """The URLs of one run, in order (a generator: W3's million are written, not held)."""
        for index in range(self.count):
            if self.path != "faults":
                yield server.url(self.path, host=1 + index % self.hosts)
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
                 body_size=3),
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
                 repeats=repeats, body_size=3),
        Workload("W5", "faults", f"W2 where {fault_mix}; per-attempt deadline "
                 f"{FAULT_DEADLINE:g} s and {FAULT_RETRIES} retries where the client has them",
                 n(10_000, 1_000), 200, "faults", "faults", delay=DELAY, repeats=repeats,
                 faults=True, body_size=40),
        Workload("W5C", "faults control",
                 "W5's server and URLs with no faults: the fault server's own ceiling",
                 n(10_000, 1_000), 200, "faults", "faults", delay=DELAY, repeats=1,
                 body_size=40),
    ]
    return {workload.name: workload for workload in workloads}


#: What a plain ``python bench/run.py`` runs (about 15 minutes). W3 (about 18 minutes) and
#: W3M (about 10 minutes, streaming clients only) are opt-in: ``--workloads all``.
DEFAULT_WORKLOADS = ("W1", "W2", "W4", "W5", "W5C")
