"""Plumbing shared by the benchmark clients: arguments, the URL file, the JSON report line.

Only the standard library is imported here, so each client decides what it imports
first (batchfetch and grequests patch the whole process with gevent when imported).
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from collections.abc import Iterator

#: Connect and read timeouts (seconds) every client sets, as a careful user would;
#: the same as batchfetch's defaults so that no client gets an easier deal.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
#: Statuses a client with retries retries (the usual transient set).
RETRY_STATUSES = (429, 500, 502, 503, 504)


def parse_args(description: str) -> argparse.Namespace:
    """The command line every client takes: URL_FILE --concurrency C [fault options]."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("url_file", help="one URL per line")
    parser.add_argument("--concurrency", type=int, required=True,
                        help="requests in flight at once")
    parser.add_argument("--hosts", type=int, default=1,
                        help="distinct hosts in the file, to size per-host connection pools")
    parser.add_argument("--stream", action="store_true",
                        help="read the URL file lazily (clients that can stream)")
    parser.add_argument("--retries", type=int, default=None,
                        help="retries for the fault workload; unset: the client's plain setup")
    parser.add_argument("--deadline", type=float, default=None,
                        help="wall-clock cap per attempt, for clients that have one")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes sharing the batch, for clients that have them")
    parser.add_argument("--adaptive", action="store_true",
                        help="the client's own adaptive pace (only clients that have one "
                             "are given it)")
    return parser.parse_args()


def read_urls(path: str) -> list[str]:
    """Every URL of the file, in a list (what most scripts do)."""
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


def iter_urls(path: str) -> Iterator[str]:
    """The file's URLs one at a time, so memory does not grow with the input."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line:
                yield line


def describe_exception(exc: BaseException) -> str:
    """A failure's kind: the exception class, and the OS error number buried in it, if any."""
    found = re.search(r"\[Errno (-?\d+)\]", str(exc))
    return f"{type(exc).__name__} [Errno {found.group(1)}]" if found else type(exc).__name__


class Tally:
    """Counts what a client saw: 2xx responses, body bytes read, and failures by kind."""

    def __init__(self) -> None:
        self.ok = 0
        self.failed = 0
        self.bytes = 0
        self.attempts = 0
        self.errors: collections.Counter[str] = collections.Counter()

    def success(self, size: int) -> None:
        self.ok += 1
        self.bytes += size

    def failure(self, kind: str) -> None:
        self.failed += 1
        self.errors[kind] += 1

    def response(self, status: int | None, size: int, error: str = "") -> None:
        """Record one final outcome: a 2xx status is a success, anything else a failure."""
        if status is not None and 200 <= status < 300 and not error:
            self.success(size)
        else:
            self.failure(error or f"status {status}")


def count_reqstorm_result(tally: Tally, result) -> None:
    """Add one reqstorm ``Result`` (both reqstorm clients) to ``tally``."""
    tally.attempts += result.attempts
    error = describe_exception(result.error) if result.error is not None else ""
    tally.response(result.status, len(result.body), error)


def report(client: str, tally: Tally, elapsed: float, **extra: object) -> None:
    """Print the one JSON line the harness reads (the last line of stdout)."""
    line = {"client": client, "ok": tally.ok, "failed": tally.failed, "bytes": tally.bytes,
            "elapsed": round(elapsed, 4), "errors": dict(tally.errors.most_common(5))}
    if tally.attempts:
        line["attempts"] = tally.attempts
    line.update(extra)
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
