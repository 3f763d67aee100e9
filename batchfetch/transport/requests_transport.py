"""The transport over a requests Session: plain requests on the native path (LeanSession,
``native.py``), anything else, or everything with ``fast_path=False``, on requests' own
path. Both send the same bytes (``tests/test_parity.py``).
"""
from __future__ import annotations

from typing import Any

from ..config import FetchOptions
from ..inputs import RequestSpec
from ..robots import fetch_policy
from .attempt import run_attempt
from .base import HostKey, Outcome
from .connections import SENT_ON, Connections, SentOn
from .session import RequestSettings, build_session

__all__ = ["RequestsTransport"]


class RequestsTransport:
    """Attempts through one requests Session, built from the options when first needed.

    Example::

        >>> from batchfetch.inputs import host_key, to_spec
        >>> transport = RequestsTransport(FetchOptions())
        >>> spec = to_spec("http://127.0.0.1:8000/ok", transport.options)
        >>> transport.attempt(spec, host_key(spec.url), 0).status
        200
        >>> transport.close()
    """

    def __init__(self, options: FetchOptions) -> None:
        self.options = options
        #: The run-wide connection budget, across sessions (see Transport.connections).
        self.connections = Connections(limit=options.concurrency)
        self._session: Any = None
        self._settings: RequestSettings | None = None

    @property
    def session(self) -> Any:
        """The requests Session (with the run's pools), built on first use."""
        if self._session is None:
            self._session = build_session(self.options, self.connections)
            self._settings = RequestSettings(self.options, self._session.environment)
        return self._session

    def attempt(self, spec: RequestSpec, host: HostKey, index: int) -> Outcome:
        """One attempt's outcome (see :class:`~batchfetch.transport.base.Transport`)."""
        session = self.session
        kwargs = self._settings.kwargs(spec, host)
        sent_on = SentOn()  # the connections that carry it report on it
        token = SENT_ON.set(sent_on)
        try:
            outcome = run_attempt(session, spec.method, spec.url, kwargs, self.options, index)
        finally:
            SENT_ON.reset(token)
        outcome.reused = sent_on.reused
        return outcome

    def fetch_robots(self, spec: RequestSpec, host: HostKey) -> Any:
        """The origin's robots.txt policy, fetched through this session's pools."""
        session = self.session
        return fetch_policy(session, spec.url, self._settings.kwargs(spec, host),
                            self.options.user_agent, deadline=self.options.deadline)

    def close(self) -> None:
        """Close the session and its idle connections; a later attempt opens a new one."""
        if self._session is not None:
            self._session.close()
            self._session = self._settings = None
