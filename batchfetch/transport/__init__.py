"""How one attempt goes on the wire. ``base.py`` is the seam (:class:`Transport`,
:class:`Outcome`); ``requests_transport.py`` sends through a requests Session
(``session.py``: the session and its per-run settings; ``attempt.py``: one attempt under
its deadline; ``hops.py``: what each redirect hop carries), plain requests on the native
path (``fastpath.py`` decides what is plain; ``native.py`` writes the request and reads the
answer with geventhttpclient's parser, ``_ghc.py``, on ``connections.py``'s run-wide pool)
and the rest on requests' own path.

:data:`TRANSPORTS` lists every way an attempt can go out, with the option values that
choose it: the differential tests (``tests/test_parity*.py``) run over all of them, so a
new transport is a module, an entry here, and nothing else.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ..config import FetchOptions
from ._ghc import PROBLEMS
from .base import Outcome, Transport
from .requests_transport import RequestsTransport

__all__ = ["TRANSPORTS", "Outcome", "Transport", "TransportChoice", "transport_for"]


@dataclasses.dataclass(frozen=True)
class TransportChoice:
    """A transport, and the option values that make a run use it.

    ``available`` is False when the installed libraries lack what it relies on (the run
    then falls back inside the transport, see ``session.build_session``): the
    differential tests leave it out rather than compare requests' path with itself.
    """

    name: str
    chosen_by: Mapping[str, Any]
    build: Callable[[FetchOptions], Transport]
    available: bool = True

    def chosen(self, options: FetchOptions) -> bool:
        return all(getattr(options, name) == value for name, value in self.chosen_by.items())


TRANSPORTS = (
    TransportChoice("fast", {"fast_path": True}, RequestsTransport, available=not PROBLEMS),
    TransportChoice("requests", {"fast_path": False}, RequestsTransport),
)


def transport_for(options: FetchOptions) -> Transport:
    """The transport ``options`` choose: the first entry of TRANSPORTS they match.

    Example::

        >>> type(transport_for(FetchOptions(fast_path=False))).__name__
        'RequestsTransport'
    """
    return next(choice for choice in TRANSPORTS if choice.chosen(options)).build(options)
