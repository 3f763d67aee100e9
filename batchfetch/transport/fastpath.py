"""LeanSession: plain requests go straight to urllib3; anything else takes requests' path.

requests spends most of its CPU per request preparing what a batch never varies:
a Request and a PreparedRequest, settings merges, cookie jars, hooks. For a plain
request (no proxy, no params, a str/bytes/JSON body, basic or no auth, simple
cookies, a URL already in the form requests would send) this session builds the
same headers and body itself and calls the same urllib3 pool the same way
``HTTPAdapter.send`` does, mapping errors to the same requests exceptions.
Redirects are handed back to requests (``resolve_redirects``) with the request
it would have prepared, so a chain behaves exactly as on the full path.

It is built for ``session.build_session``: it relies on the run's cookie jar storing
nothing (``session._StoreNothing``; the full path's ``extract_cookies_to_jar`` into
the session jar is skipped) and on the session having no session-level auth, params,
proxies or hooks (batchfetch passes everything per request).
"""
from __future__ import annotations

import datetime
import ipaddress
import json as jsonlib
import re
from typing import Any

import requests
import requests.exceptions as rex
import urllib3.exceptions as u3
import requests.auth
from requests.cookies import cookiejar_from_dict
from requests.structures import CaseInsensitiveDict
from requests.utils import UNRESERVED_SET, get_encoding_from_headers
from urllib3.util import Timeout

from .hops import HopSession

__all__ = ["LeanSession", "is_plain_url"]

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
    # a lower-case scheme; a lower-case name or IPv4 address not starting with '.', or an
    # IPv6 literal (checked in is_plain_url); no user info
    r"https?://(?:[a-z0-9-][a-z0-9.-]*|\[([0-9a-f:.]+)\])(?::" + _PORT + ")?"
    # a path whose segments are never '.' or '..' (parse_url removes those)
    r"(?:/(?!\.\.?(?:[/?]|\Z))" + _PCHAR + "*(?:" + _ESCAPE + _PCHAR + "*)*)+"
    # no query, or a non-empty one (an empty '?' is dropped); no fragment
    r"(?:\?(?!\Z)" + _QCHAR + "*(?:" + _ESCAPE + _QCHAR + r"*)*)?\Z")
# Cookie names and values the cookie jar would send verbatim.
_PLAIN_COOKIE = re.compile(r"^[!#-+\--:<-\[\]-~]*$")
_NO_BODY = object()
_NO_POOL = (None, None)
#: Pools and their adapters remembered by (origin, verify, cert), saving the per-request
#: adapter and pool-manager lookups.
_POOL_CACHE_SIZE = 1024
#: Wire headers remembered for requests without body, auth or cookies, by (method, headers).
_HEADER_CACHE_SIZE = 64
_NO_TIME = datetime.timedelta(0)


def is_plain_url(url: str) -> bool:
    """True if requests would send ``url`` exactly as written; the fast path takes only these.

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


class _UrlOnly:
    """What ``build_connection_pool_key_attributes`` reads of a request: its URL."""

    __slots__ = ("url",)

    def __init__(self, url: str) -> None:
        self.url = url


def _body(data: Any, json: Any) -> Any:
    """The bytes/str body requests would send, None for none, or _NO_BODY if not plain."""
    if not data and json is not None:
        return jsonlib.dumps(json, allow_nan=False).encode("utf-8")
    if data is None or isinstance(data, (str, bytes)):
        return data or None
    return _NO_BODY


# What HTTPAdapter.send catches from urlopen and raises again as a requests exception.
_URLOPEN_ERRORS = (u3.ProtocolError, OSError, u3.MaxRetryError, u3.ClosedPoolError,
                   u3.SSLError, u3.ReadTimeoutError, u3.InvalidHeader)


def _adapter_error(exc: Exception) -> type[rex.RequestException]:
    """The requests exception HTTPAdapter.send raises for ``exc``, tested in its order."""
    if isinstance(exc, (u3.ProtocolError, OSError)):
        return rex.ConnectionError
    if isinstance(exc, u3.MaxRetryError):
        reason = exc.reason
        if isinstance(reason, u3.ConnectTimeoutError) and not isinstance(
                reason, u3.NewConnectionError):
            return rex.ConnectTimeout
        if isinstance(reason, u3.ResponseError):
            return rex.RetryError
        if isinstance(reason, u3.ProxyError):
            return rex.ProxyError
        if isinstance(reason, u3.SSLError):
            return rex.SSLError
        return rex.ConnectionError
    if isinstance(exc, u3.ClosedPoolError):
        return rex.ConnectionError
    if isinstance(exc, u3.SSLError):
        return rex.SSLError
    if isinstance(exc, u3.ReadTimeoutError):
        return rex.ReadTimeout
    return rex.InvalidHeader


def _sent_request(method: str, url: str, headers: dict, body: Any) -> requests.PreparedRequest:
    """The PreparedRequest requests' path would have sent, for the exception of a failed send.

    Built only when a send fails: a success never needs one, and the fast path exists to
    skip building it. Its headers are the wire headers, PreparedRequest's own
    (tests/test_parity.py), so ``exc.request`` reads the same on both paths.
    """
    request = requests.PreparedRequest()
    request.method = method
    request.url = url
    request.headers = CaseInsensitiveDict(headers)
    request.body = body
    return request


def _plain_cookies(cookies: Any) -> bool:
    return not cookies or (isinstance(cookies, dict) and all(
        isinstance(name, str) and isinstance(value, str) and _PLAIN_COOKIE.match(name)
        and _PLAIN_COOKIE.match(value) and name for name, value in cookies.items()))


class _LeanResponse(requests.Response):
    """A requests.Response filled as HTTPAdapter.build_response fills one, for less.

    Its ``headers`` are urllib3's HTTPHeaderDict, case-insensitive like requests'
    CaseInsensitiveDict, rather than a copy of it; its cookie jar is made when first
    read (a batch almost never reads it: the run's jar stores nothing).
    """

    def __init__(self, raw, url: str, adapter) -> None:  # noqa: D107 - no super(): see above
        self._content = False
        self._content_consumed = False
        self._next = None
        self.status_code = raw.status
        self.headers = raw.headers
        self.raw = raw
        self.url = url
        self.encoding = get_encoding_from_headers(raw.headers)
        self.history = []
        self.reason = raw.reason
        self.elapsed = _NO_TIME
        self.request = None
        self.connection = adapter

    @property
    def cookies(self):  # noqa: D102 - requests API
        jar = self.__dict__.get("_cookie_jar")
        if jar is None:
            jar = self.__dict__["_cookie_jar"] = cookiejar_from_dict({})
        return jar

    @cookies.setter
    def cookies(self, jar) -> None:
        self.__dict__["_cookie_jar"] = jar


class LeanSession(HopSession):
    """A requests.Session whose plain requests skip requests' per-request preparation.

    Example::

        >>> session = LeanSession()
        >>> session.request("GET", "http://127.0.0.1:8000/ok", timeout=5).status_code
        200
    """

    def __init__(self, proxies: Any = None, auth: Any = None, rules: Any = None,
                 headers: Any = None) -> None:
        self._pools: dict[Any, tuple[Any, Any]] = {}  # before Session.__init__ mounts
        super().__init__(proxies, auth, rules, headers)
        self._timeouts: dict[Any, Timeout] = {}
        self._plain_headers: dict[Any, dict] = {}

    def mount(self, prefix, adapter) -> None:
        super().mount(prefix, adapter)
        self._pools.clear()  # they remember the adapter that served them

    def request(self, method, url, params=None, data=None, headers=None, cookies=None,
                files=None, auth=None, timeout=None, allow_redirects=True, proxies=None,
                hooks=None, stream=None, verify=None, cert=None, json=None):
        body = _body(data, json)
        plain_auth = auth is None or (isinstance(auth, tuple) and len(auth) == 2
                                      and all(isinstance(part, str) for part in auth))
        if (params or files or hooks or proxies or body is _NO_BODY or not plain_auth
                or not isinstance(url, str) or not _plain_cookies(cookies)
                or (cookies and any(name.lower() == "cookie" for name in headers or ()))):
            return self._full(method, url, params, data, headers, cookies, files, auth,
                              timeout, allow_redirects, proxies, hooks, stream, verify, cert,
                              json)
        if not is_plain_url(url):
            return self._full(method, url, params, data, headers, cookies, files, auth,
                              timeout, allow_redirects, proxies, hooks, stream, verify, cert,
                              json)
        wire_headers = self._headers(method, headers, body, data, json, auth, cookies)
        response = self._send(method, url, body, wire_headers, timeout, verify, cert)
        if allow_redirects and response.is_redirect:
            response = self._follow(response, method, url, data, headers, cookies, auth,
                                    json, stream, timeout, verify, cert)
        if not stream:
            response.content  # noqa: B018 - as Session.send does without stream
        return response

    def _full(self, method, url, params, data, headers, cookies, files, auth, timeout,
              allow_redirects, proxies, hooks, stream, verify, cert, json):
        return super().request(method, url, params=params, data=data, headers=headers,
                               cookies=cookies, files=files, auth=auth, timeout=timeout,
                               allow_redirects=allow_redirects, proxies=proxies, hooks=hooks,
                               stream=stream, verify=verify, cert=cert, json=json)

    def _headers(self, method: str, headers, body, data, json, auth, cookies) -> dict:
        """The headers PreparedRequest would build, in the order it builds them.

        The session's, the request's, then Cookie, the body's, and Authorization.
        """
        key = None
        if body is None and auth is None and not cookies:
            try:
                key = (method, tuple(headers.items()) if headers else ())
                known = self._plain_headers.get(key)  # TypeError: an unhashable value
            except (AttributeError, TypeError):
                key = known = None
            if known is not None:
                return known  # urllib3 reads it and never changes it
        merged = CaseInsensitiveDict(self.headers)
        for name, value in (headers or {}).items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        if cookies:  # before the body's and auth's headers, in PreparedRequest.prepare's order
            merged["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        if body is not None:
            merged["Content-Length"] = str(len(body.encode("utf-8") if isinstance(body, str)
                                               else body))
            if not data and json is not None and "content-type" not in merged:
                merged["Content-Type"] = "application/json"
        elif method not in ("GET", "HEAD") and merged.get("Content-Length") is None:
            merged["Content-Length"] = "0"
        if auth is not None:
            # Private to requests: checked at import (_internals.py), looked up here so a
            # requests without it still imports this module.
            merged["Authorization"] = requests.auth._basic_auth_str(*auth)
        wire = dict(merged.items())
        if key is not None:
            if len(self._plain_headers) >= _HEADER_CACHE_SIZE:
                self._plain_headers.clear()
            self._plain_headers[key] = wire
        return wire

    def _timeout(self, timeout: Any) -> Timeout:
        resolved = self._timeouts.get(timeout)
        if resolved is None:
            connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
            resolved = self._timeouts[timeout] = Timeout(connect=connect, read=read)
        return resolved

    def _send(self, method: str, url: str, body, headers: dict, timeout, verify, cert):
        """HTTPAdapter.send without the PreparedRequest: same pool, arguments and errors."""
        path_start = url.index("/", url.index("//") + 2)  # _PLAIN_URL has a path, no fragment
        path = url[path_start:]
        key = (url[:path_start], verify, cert)
        conn, adapter = self._pools.get(key, _NO_POOL)
        if conn is None or conn.pool is None:  # new, or closed since (the manager evicts)
            adapter = self.get_adapter(url)
            try:
                host_params, pool_kwargs = adapter.build_connection_pool_key_attributes(
                    _UrlOnly(url), verify, cert)
                conn = adapter.poolmanager.connection_from_host(**host_params,
                                                                pool_kwargs=pool_kwargs)
            except (ValueError, u3.LocationValueError) as exc:
                request = _sent_request(method, url, headers, body)
                raise rex.InvalidURL(exc, request=request) from None
            adapter.cert_verify(conn, url, verify, cert)
            if len(self._pools) >= _POOL_CACHE_SIZE:
                self._pools.clear()  # many hosts: the manager evicted most of these anyway
            self._pools[key] = conn, adapter
        try:
            raw = conn.urlopen(method=method, url=path, body=body,
                               headers=headers, redirect=False, assert_same_host=False,
                               preload_content=False, decode_content=False,
                               retries=adapter.max_retries, timeout=self._timeout(timeout),
                               chunked=False)
        except _URLOPEN_ERRORS as exc:
            request = _sent_request(method, url, headers, body)
            raise _adapter_error(exc)(exc, request=request) from None
        return _LeanResponse(raw, url, adapter)

    def _follow(self, response, method, url, data, headers, cookies, auth, json, stream,
                timeout, verify, cert):
        """Hand a redirect to requests, with the request it would have prepared."""
        from requests.cookies import extract_cookies_to_jar

        prepared = self.prepare_request(requests.Request(
            method=method, url=url, headers=headers, data=data or None, json=json,
            auth=auth, cookies=cookies))
        response.request = prepared
        extract_cookies_to_jar(response.cookies, prepared, response.raw)
        history = list(self.resolve_redirects(response, prepared, stream=stream,
                                              timeout=timeout, verify=verify, cert=cert,
                                              proxies={}))
        if history:
            history.insert(0, response)
            response = history.pop()
            response.history = history
        return response
