"""A loopback HTTP server for tests (yours too): ``server.py`` parses and answers,
``routes.py`` holds what each path does.

Example::

    >>> from batchfetch.testing import LoopbackServer
    >>> with LoopbackServer() as server:
    ...     server.url("/ok").startswith("http://127.0.0.1:")
    True
"""
from .server import (PATTERN, ROUTES, Connection, LoopbackServer, Request, pattern_bytes,
                     refused_url)

__all__ = ["PATTERN", "ROUTES", "Connection", "LoopbackServer", "Request", "pattern_bytes",
           "refused_url"]
