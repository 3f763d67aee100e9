"""URL facts shared by options, inputs and the transport: the unit of per-host limits (a
URL's ``(scheme, host, port)``, with a bounded memo of it per origin for a run), which URLs
requests sends exactly as written, and what a proxy URL must be.
"""
from __future__ import annotations

import ipaddress
import re

from requests.utils import UNRESERVED_SET
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from ._cache import BoundedCache

from .redaction import mask_passwords

__all__ = ["DEFAULT_PORTS", "SCHEME", "HostKeys", "host_key", "is_plain_url",
           "proxy_url_problem", "starts_as_url"]

#: A URL's scheme (group 1) and its colon, as RFC 3986 spells a scheme.
SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def starts_as_url(text: str) -> bool:
    """Whether ``text`` starts as a URL does: a scheme, then ``://``.

    Example::

        >>> starts_as_url("https://a.example/x"), starts_as_url("urls.txt")
        (True, False)
    """
    scheme = SCHEME.match(text)
    return scheme is not None and text.startswith("//", scheme.end())


DEFAULT_PORTS = {"http": 80, "https": 443}

# What prepare_url (urllib3's parse_url, then requote_uri) keeps exactly as written. A path
# or query character outside RFC 3986's unreserved and sub-delims (and ':' '@', '/' '?')
# is percent-encoded by parse_url: '[', ']', '|', '{', '"', space, non-ASCII.
_PCHAR = r"[A-Za-z0-9._~!$&'()*+,;=:@-]"
_QCHAR = r"[A-Za-z0-9._~!$&'()*+,;=:@/?-]"
# A percent escape both keep: upper-case hex (parse_url upper-cases escapes) of a byte that
# is not unreserved (requote_uri decodes those: %7E becomes '~', %2E%2E becomes '..').
_ESCAPE = "%(?!" + "|".join(sorted(f"{ord(c):02X}" for c in UNRESERVED_SET)) + ")[0-9A-F]{2}"
# 1 to 65535 without leading zeros: parse_url drops those, and port 0 (prepare_url drops it).
_PORT = (r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]"
         r"|6553[0-5])")
_PLAIN_URL = re.compile(
    # a lower-case scheme; a lower-case name or IPv4 address neither starting nor ending
    # with '.' (urllib3 drops a final dot from Host and the TLS name), or an IPv6 literal
    # (checked in is_plain_url); no user info
    r"https?://(?:[a-z0-9-](?:[a-z0-9.-]*[a-z0-9-])?|\[([0-9a-f:.]+)\])(?::" + _PORT + ")?"
    # a path whose segments are never '.' or '..' (parse_url removes those)
    r"(?:/(?!\.\.?(?:[/?]|\Z))" + _PCHAR + "*(?:" + _ESCAPE + _PCHAR + "*)*)+"
    # no query, or a non-empty one (an empty '?' is dropped); no fragment
    r"(?:\?(?!\Z)" + _QCHAR + "*(?:" + _ESCAPE + _QCHAR + r"*)*)?\Z")


def is_plain_url(url: str) -> bool:
    """True if requests would send ``url`` exactly as written; the native transport
    takes only these, and inputs check no further.

    For such a URL ``PreparedRequest.prepare_url`` returns it unchanged, so the request line,
    the Host header and ``response.url`` are requests' own. Anything else (dot segments,
    lower-case or unneeded escapes, ``:080``, an empty ``?``, characters requests encodes,
    a fragment, user info, upper-case scheme or host) is left to requests' path.

    Example::

        >>> is_plain_url("http://127.0.0.1:8080/bytes/1024?page=3")
        True
        >>> is_plain_url("http://127.0.0.1:8080/a/../b"), is_plain_url("http://h/%7e?")
        (False, False)
    """
    match = _PLAIN_URL.match(url)
    if match is None:
        return False
    if match.group(1) is not None:  # rare: parse_url refuses malformed IPv6 literals
        try:
            ipaddress.IPv6Address(match.group(1))
        except ValueError:
            return False
    return True


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
        self._by_origin: BoundedCache = BoundedCache(limit)

    def __len__(self) -> int:
        return len(self._by_origin)

    def __call__(self, url: str) -> tuple[str, str, int]:
        origin = _ORIGIN.match(url)
        if origin is None:
            return host_key(url)
        key = self._by_origin.get(origin.group())
        if key is None:
            key = self._by_origin.remember(origin.group(), host_key(origin.group()))
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
    if parsed.scheme.startswith("socks") and not _has_socks():
        return "is a SOCKS proxy, which needs PySocks: pip install 'requests[socks]'"
    return None


def _has_socks() -> bool:
    """Whether urllib3 can reach SOCKS proxies (PySocks is installed)."""
    try:
        import socks  # noqa: F401
    except ImportError:
        return False
    return True
