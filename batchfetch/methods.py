"""HTTP methods: which ones batchfetch sends, and which it may retry safely."""
from __future__ import annotations

__all__ = ["KNOWN_METHODS", "IDEMPOTENT_METHODS", "normalize_method"]

#: The IANA HTTP Method Registry, less CONNECT and PRI (not requests a URL can carry).
KNOWN_METHODS = frozenset("""
    ACL BASELINE-CONTROL BIND CHECKIN CHECKOUT COPY DELETE GET HEAD LABEL LINK LOCK
    MERGE MKACTIVITY MKCALENDAR MKCOL MKREDIRECTREF MKWORKSPACE MOVE OPTIONS
    ORDERPATCH PATCH POST PROPFIND PROPPATCH PUT QUERY REBIND REPORT SEARCH TRACE
    UNBIND UNCHECKIN UNCHECKOUT UNLINK UNLOCK UPDATE UPDATEREDIRECTREF VERSION-CONTROL
""".split())

#: Methods whose repetition has the same effect as one request (RFC 9110, 9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE",
                                "PROPFIND", "QUERY", "SEARCH", "REPORT"})


def normalize_method(method: object) -> str:
    """Upper-case a method name and check it is a registered HTTP method.

    Raises ``ValueError`` naming the method otherwise.

    Example::

        >>> normalize_method("post")
        'POST'
    """
    if not isinstance(method, str) or method.upper() not in KNOWN_METHODS:
        raise ValueError("a registered HTTP method such as GET, POST, PUT, PATCH, DELETE "
                         "or HEAD")
    return method.upper()
