"""The offline demo behind ``batchfetch --demo``: a realistic batch against the loopback server.

Each case carries the outcome it should have. The batch goes through the same JSON Lines
reader, :func:`batchfetch.iter_fetch`, writers and summary as a real run; then every row is
checked against its case.
"""
from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from typing import Any

from ..errors import ErrorKind
from ..results import FetchResult
from ..testing import LoopbackServer, refused_url

__all__ = ["DEMO_OPTIONS", "DemoCase", "demo_cases", "run_demo"]

#: Small deadlines and waits so the demo takes about two seconds; flags given with --demo win.
DEMO_OPTIONS: dict[str, Any] = {"timeout": 2.0, "deadline": 0.5, "retries": 2, "backoff": 0.1,
                                "max_retry_wait": 2.0,
                                # no proxy for loopback, whatever *_proxy says
                                "proxies": {}}
_DEFAULT_FLAGS = " ".join(f"--{name.replace('_', '-')} {value:g}"
                         for name, value in DEMO_OPTIONS.items() if name != "proxies")


@dataclasses.dataclass(frozen=True)
class DemoCase:
    """One demo request and what its row should say: ``"ok"`` or an error kind."""

    id: str
    expect: str
    url: str
    method: str | None = None
    json: Any = None

    def spec(self) -> dict[str, Any]:
        """The JSON Lines request spec a user would write for this case."""
        fields = {"id": self.id, "url": self.url, "method": self.method, "json": self.json}
        return {key: value for key, value in fields.items() if value is not None}


def demo_cases(server: LoopbackServer) -> list[DemoCase]:
    """The demo's batch against ``server``: pages, retries, failures, a POST API call.

    Example::

        >>> with LoopbackServer() as server:
        ...     [case.expect for case in demo_cases(server)][:3]
        ['ok', 'ok', 'ok']
    """
    url = server.url
    return [
        DemoCase("html-page", "ok", url("/html")),
        DemoCase("json-document", "ok", url("/json")),
        DemoCase("slow-page", "ok", url("/delay/0.2")),
        DemoCase("flaky-503-twice", "ok", url("/flaky/demo?fail=2&status=503")),
        DemoCase("429-retry-after-1s", "ok", url("/flaky/busy?fail=1&status=429&retry_after=1")),
        DemoCase("redirect-chain", "ok", url("/redirect/3")),
        DemoCase("api-call", "ok", url("/echo"), "POST", {"op": "add", "args": [1, 2]}),
        DemoCase("not-found", ErrorKind.HTTP, url("/status/404")),
        DemoCase("missing-page", ErrorKind.HTTP, url("/no/such/page")),
        DemoCase("trickle-past-deadline", ErrorKind.DEADLINE, url("/fault/trickle?interval=0.2")),
        DemoCase("refused-port", ErrorKind.CONNECT, refused_url("/refused")),
        DemoCase("invalid-url", ErrorKind.INVALID_URL, "htp:/typo.example/"),
    ]


class _Check:
    """Compares each row with its case as it arrives; keeps only the mismatches."""

    def __init__(self, cases: list[DemoCase]) -> None:
        self.cases = cases
        self.seen = 0
        self.mismatches: list[str] = []

    def __call__(self, row: FetchResult) -> None:
        self.seen += 1
        case = self.cases[row.index]
        got = row.error or "ok"
        if got != case.expect:
            self.mismatches.append(f"row {row.index} ({case.id}): expected {case.expect}, "
                                   f"got {got} {row.message}".rstrip())

    def verdict(self) -> list[str]:
        if self.seen != len(self.cases):
            self.mismatches.append(f"{self.seen} rows for {len(self.cases)} requests")
        if not self.mismatches:
            return [f"demo: all {self.seen} rows as expected"]
        return [f"demo: {len(self.mismatches)} unexpected:"] + self.mismatches


def run_demo(fetch: Callable[[Any, Callable[[FetchResult], None]], int],
             say: Callable[[str], None]) -> int:
    """Serve the demo batch on a loopback server and fetch it with ``fetch(items, on_row)``,
    the CLI's own run; return 0 when every row came out as its case expects, else 1
    (130 when interrupted).
    """
    from .lines import NumberedItems
    from .streams import EXIT_INTERRUPTED

    with LoopbackServer() as server:
        cases = demo_cases(server)
        lines = "".join(json.dumps(case.spec()) + "\n" for case in cases).encode()
        say(f"demo: {len(cases)} requests to a loopback server at {server.base_url}; "
            f"demo defaults (flags win): {_DEFAULT_FLAGS}")
        check = _Check(cases)
        code = fetch(NumberedItems(io.BytesIO(lines), "jsonl", "the demo's list"), check)
    if code == EXIT_INTERRUPTED:
        return code
    for line in check.verdict():
        say(line)
    return 1 if check.mismatches else 0
