"""urllib3's connections and pools as requests' path uses them: each connection tells the
attempt it carries whether it was reused, and counts against the run's connection budget
(``connections.Connections``), which the native transport's connections share.

A connection joins the budget when it connects and leaves when its socket is done with:
when it closes while idle, or, if it closes while carrying a response (http.client closes
a connection whose response says ``Connection: close`` before the body is read), once
urllib3 hands it back. It is idle from when urllib3 puts it back in its pool (after each
hop of a redirect chain too) until its next request; while idle the budget may close it
to make room, and urllib3, finding it closed in its pool, connects it again when next
needed.

The one reliance on urllib3's internals: the pool's ``_put_conn`` (every response's end
passes through it), checked below and bounded by setup.cfg's urllib3 range.
"""
from __future__ import annotations

from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .connections import SENT_ON, Connections

__all__ = ["pool_classes"]

if not callable(getattr(HTTPConnectionPool, "_put_conn", None)):  # pragma: no cover
    raise ImportError("batchfetch needs urllib3's HTTPConnectionPool._put_conn (urllib3 2.x, "
                      "as setup.cfg pins it)")


class _Tracking:
    """Mixed into urllib3's connection classes; ``budget`` is set on the subclass each
    run makes (:func:`pool_classes`)."""

    budget: Connections
    _requests_sent = 0
    _counted = False  # in the budget's count
    _carrying = False  # between a request and urllib3 taking it back
    _closed_while_carrying = False

    def connect(self) -> None:  # noqa: D102 - urllib3 API
        if not self._counted:
            self.budget.opening()  # may close another origin's idle connection
            self._counted = True
        try:
            super().connect()
        except BaseException:
            self.close()
            raise

    def request(self, *args, **kwargs):  # noqa: D102 - urllib3 API
        # A POST that meets a reset before any response byte on a reused keep-alive
        # connection was not processed (the server closed an idle connection), so it is
        # safe to retry; on a fresh connection nobody can tell.
        attempt = SENT_ON.get()
        if attempt is not None:
            attempt.reused = self._requests_sent > 0
        self._carrying = True
        self.budget.busy(self)
        self._requests_sent += 1
        return super().request(*args, **kwargs)

    def handed_back(self) -> None:
        """urllib3 has it back: its response is over. Idle if still open, else out of
        the count."""
        self._carrying = False
        if self._closed_while_carrying:
            self._closed_while_carrying = False
            self._uncount()
        elif self._counted:
            self.budget.idle(self)

    def evict(self) -> None:
        """Close it while idle (urllib3 reconnects it when its pool hands it out again)."""
        self.close()

    def close(self) -> None:  # noqa: D102 - urllib3 API
        self._requests_sent = 0
        try:
            super().close()
        finally:
            if self._carrying and self._counted:
                self._closed_while_carrying = True  # its response may still read the socket
            else:
                self._uncount()

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            self.budget.closed(self)


class _TrackingPool:
    """Mixed into urllib3's pool classes: tells each connection when it is handed back."""

    def _put_conn(self, conn) -> None:
        if conn is not None:
            conn.handed_back()
        super()._put_conn(conn)


def pool_classes(budget: Connections) -> dict[str, Any]:
    """urllib3's pool classes by scheme for one run, their connections counted by ``budget``
    (``PoolManager.pool_classes_by_scheme``).

    Example::

        >>> classes = pool_classes(Connections(limit=8))
        >>> classes["https"].ConnectionCls.budget.limit
        8
    """
    classes = {}
    for scheme, pool_class, connection_class in (
            ("http", HTTPConnectionPool, HTTPConnection),
            ("https", HTTPSConnectionPool, HTTPSConnection)):
        tracked_connection = _like(connection_class, (_Tracking, connection_class),
                                   {"budget": budget})
        classes[scheme] = _like(pool_class, (_TrackingPool, pool_class),
                                {"ConnectionCls": tracked_connection})
    return classes


def _like(original: type, bases: tuple[type, ...], namespace: dict[str, Any]) -> type:
    """A subclass that exceptions name as urllib3 names ``original`` ("<urllib3.connection.
    HTTPConnection object at ...>", "HTTPConnectionPool(host=...)"), as plain requests and
    the native transport give them."""
    return type(original.__name__, bases, {**namespace, "__module__": original.__module__,
                                           "__qualname__": original.__qualname__})
