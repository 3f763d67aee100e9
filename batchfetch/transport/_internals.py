"""What the fast path takes from other libraries' private parts, checked once at import.

``fastpath.py`` builds requests' Response objects without their ``__init__`` and signs
basic auth with ``requests.auth._basic_auth_str``; ``wire.py`` overrides parts of
``http.client``'s connection and response that are private there. None of that is
promised by requests or the standard library, so setup.cfg bounds requests and urllib3
to the versions the tests cover, and :data:`PROBLEMS` lists what is missing in the ones
installed. When it is not empty, every request takes requests' own path on plain
urllib3 connections (slower, the same bytes) and one RuntimeWarning says why.
"""
from __future__ import annotations

import http.client
import warnings

import requests
import requests.auth
from requests.adapters import HTTPAdapter

__all__ = ["PROBLEMS", "find_problems"]

#: Every attribute ``requests.Response.__init__`` sets, which ``fastpath._LeanResponse``
#: sets too (it skips that ``__init__``): a new one there would be missing here.
LEAN_RESPONSE_ATTRIBUTES = frozenset({
    "_content", "_content_consumed", "_next", "status_code", "headers", "raw", "url",
    "encoding", "history", "reason", "cookies", "elapsed", "request", "connection"})


def find_problems() -> list[str]:
    """What the fast path relies on and the installed libraries lack (empty: all there).

    Example::

        >>> find_problems()
        []
    """
    problems = []
    if not callable(getattr(requests.auth, "_basic_auth_str", None)):
        problems.append("requests.auth._basic_auth_str is gone")
    unknown = set(vars(requests.Response())) - LEAN_RESPONSE_ATTRIBUTES
    if unknown:
        problems.append(f"requests.Response sets {', '.join(sorted(unknown))}, which the fast "
                        "path's responses would lack")
    for name in ("build_connection_pool_key_attributes", "cert_verify"):
        if not callable(getattr(HTTPAdapter, name, None)):
            problems.append(f"requests' HTTPAdapter.{name} is gone")
    for name in ("_read_status", "_check_close"):
        if not callable(getattr(http.client.HTTPResponse, name, None)):
            problems.append(f"http.client.HTTPResponse.{name} is gone")
    connection = http.client.HTTPConnection("127.0.0.1")  # not connected: no socket yet
    if not callable(getattr(connection, "_output", None)) or not isinstance(
            getattr(connection, "_buffer", None), list):
        problems.append("http.client.HTTPConnection's _output or _buffer is gone")
    return problems


#: Empty when the fast path can run; otherwise what it would miss.
PROBLEMS = find_problems()
if PROBLEMS:
    warnings.warn(f"batchfetch: the fast path is off ({'; '.join(PROBLEMS)}); every request "
                  f"takes requests' own path (same bytes, more CPU). requests "
                  f"{requests.__version__} is outside the versions batchfetch was tested "
                  "with: see its setup.cfg.", RuntimeWarning, stacklevel=2)
