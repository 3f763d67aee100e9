"""URL facts shared by options and inputs: the unit of per-host limits (a URL's
``(scheme, host, port)``, with a bounded memo of it per origin for a run), and what a
proxy URL must be.
"""
from __future__ import annotations

import re

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from .redaction import mask_passwords

__all__ = ["DEFAULT_PORTS", "HostKeys", "host_key", "proxy_url_problem"]

DEFAULT_PORTS = {"http": 80, "https": 443}


def host_key(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a valid http(s) URL: the unit of per-host limits.

    Example::

        >>> host_key("HTTPS://Example.com/x")
        ('https', 'example.com', 443)
    """
    parsed = parse_url(url)
    scheme = (parsed.scheme or "http").lower()
    return scheme, (parsed.host or "").lower(), parsed.port or DEFAULT_PORTS.get(scheme, 0)


_ORIGIN = re.compile(r"^[^:/?#]+://[^/?#]*")


class HostKeys:
    """:func:`host_key` remembered per origin (``scheme://authority``) for one run.

    Parsing every URL of a batch again costs more than the whole scheduler step;
    a batch has few origins. Bounded: it starts again past ``limit`` origins.

    Example::

        >>> keys = HostKeys()
        >>> keys("https://example.com/a"), len(keys)   # the default port filled in
        (('https', 'example.com', 443), 1)
    """

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._by_origin: dict[str, tuple[str, str, int]] = {}

    def __len__(self) -> int:
        return len(self._by_origin)

    def __call__(self, url: str) -> tuple[str, str, int]:
        origin = _ORIGIN.match(url)
        if origin is None:
            return host_key(url)
        key = self._by_origin.get(origin.group())
        if key is None:
            if len(self._by_origin) >= self.limit:
                self._by_origin.clear()
            key = self._by_origin[origin.group()] = host_key(origin.group())
        return key


_PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")


def proxy_url_problem(url: str) -> str | None:
    """What is wrong with one proxy URL (the URL not repeated), or None.

    Example::

        >>> proxy_url_problem("http://127.0.0.1:3128") is None, proxy_url_problem("ftp://h")
        (True, 'needs a host and one of the schemes http, https, socks4, socks4a, socks5, socks5h')
    """
    try:
        parsed = parse_url(url if "://" in url else "http://" + url)
    except LocationParseError as exc:
        return mask_passwords(f"is not a URL ({exc})")
    if parsed.scheme not in _PROXY_SCHEMES or not parsed.host:
        return f"needs a host and one of the schemes {', '.join(_PROXY_SCHEMES)}"
    return None
