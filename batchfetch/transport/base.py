"""The transport seam: how one attempt goes on the wire, and what it reports back.

A transport is built once per engine from the run's options (it owns its session and
connection pools) and serves every attempt of every run of that engine, from many
attempt greenlets at once. It never raises for a failed attempt: every failure is an
:class:`Outcome` with an error kind, which the scheduler alone turns into retries and
rows.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from ..inputs import RequestSpec

__all__ = ["HostKey", "Outcome", "Transport"]

#: ``(scheme, host, port)``: the unit of per-host limits and settings.
HostKey = tuple[str, str, int]


@dataclasses.dataclass(slots=True)
class Outcome:
    """What one attempt produced: a response's facts, an error kind, or both.

    ``reused`` says whether the attempt went out on a keep-alive connection that had
    carried a request before: a reset before any response byte on such a connection
    means the server closed it idle, so even a POST is safe to retry.
    """

    status: int | None = None
    reason: str = ""
    final_url: str = ""
    content_type: str = ""
    retry_after: str | None = None
    sha256: str = ""  # of the decoded body, with hash_body
    etag: str = ""
    last_modified: str = ""
    size: int = 0
    body: bytes | None = None
    #: The final response's headers when the options ask for them (results.grouped_headers).
    headers: dict[str, Any] | None = None
    path: str = ""
    error: str = ""
    message: str = ""
    exception: BaseException | None = None
    reused: bool = False


class Transport(Protocol):
    """One way of sending attempts (see ``transport/__init__.py`` for the list)."""

    #: The connection budget (``connections.Connections``), across its sessions: ``open``
    #: counts the connections open now; lowering ``limit`` and calling ``trim()`` closes
    #: idle ones over it at once, and the others as their responses end.
    connections: Any

    def attempt(self, spec: RequestSpec, host: HostKey, index: int) -> Outcome:
        """Send ``spec`` once (redirects followed as the options say), read its body under
        the deadline, and describe it. Never raises, except GreenletExit on cancel.
        ``index`` (the input position) names the file a body is saved to."""
        ...

    def fetch_robots(self, spec: RequestSpec, host: HostKey) -> Any:
        """The robots.txt policy of ``spec``'s origin (``batchfetch.robots.RobotsPolicy``),
        fetched with the run's timeouts, TLS settings and proxies."""
        ...

    def close(self) -> None:
        """Close the transport's connections; idempotent."""
        ...
