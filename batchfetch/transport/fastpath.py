"""LeanSession: plain requests go out on the native transport; anything else takes requests'
path.

requests spends most of its CPU per request preparing what a batch never varies:
a Request and a PreparedRequest, settings merges, cookie jars, hooks. For a plain
request (no proxy, no params, a str/bytes/JSON body, basic or no auth, simple
cookies, a URL already in the form requests would send, headers http.client sends
as they are) this session builds the same headers and body itself and hands them
to ``native.NativeSender``, which writes the bytes requests would write.
Redirects are handed back to requests (``resolve_redirects``) with the request
it would have prepared, so a chain behaves exactly as on the full path.

It is built for ``session.build_session``: it relies on the run's cookie jar storing
nothing (``session._StoreNothing``; the full path's ``extract_cookies_to_jar`` into
the session jar is skipped) and on the session having no session-level auth, params,
proxies or hooks (batchfetch passes everything per request).
"""
from __future__ import annotations

import base64
import json as jsonlib
import re
from typing import Any

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import select_proxy

from .._cache import BoundedCache
from .connections import Connections
from .hops import HopSession
from .native import NativeSender

__all__ = ["LeanSession", "NativeAdapter"]

# Cookie names and values the cookie jar would send verbatim.
_PLAIN_COOKIE = re.compile(r"^[!#-+\--:<-\[\]-~]*$")
_NO_BODY = object()
#: Wire headers remembered for requests without body, auth or cookies, by (method, headers).
_HEADER_CACHE_SIZE = 64


def _body(data: Any, json: Any) -> Any:
    """The bytes/str body requests would send, None for none, or _NO_BODY if not plain."""
    if not data and json is not None:
        return jsonlib.dumps(json, allow_nan=False).encode("utf-8")
    if data is None or isinstance(data, (str, bytes)):
        return data or None
    return _NO_BODY


def _plain_cookies(cookies: Any) -> bool:
    return not cookies or (isinstance(cookies, dict) and all(
        isinstance(name, str) and isinstance(value, str) and _PLAIN_COOKIE.match(name)
        and _PLAIN_COOKIE.match(value) and name for name, value in cookies.items()))


class NativeAdapter(BaseAdapter):
    """requests' transport adapter for a prepared request: a plain one (no proxy, a plain
    URL, a bytes or str body, plain headers) goes out on the native sender, anything else
    on ``fallback`` (an HTTPAdapter: its pools, proxies and streamed bodies)."""

    def __init__(self, sender: NativeSender, fallback: HTTPAdapter | None = None) -> None:
        super().__init__()
        self.sender = sender
        self.fallback = fallback or HTTPAdapter(max_retries=0)

    def send(self, request, stream=False, timeout=None, verify=True, cert=None,
             proxies=None):  # noqa: D102 - requests API
        url, body = request.url, request.body
        ready = None
        if isinstance(url, str) and (body is None or isinstance(body, (bytes, str))) and \
                not select_proxy(url, proxies):
            ready = self.sender.ready(url, dict(request.headers), verify, cert)
        if ready is None:
            return self.fallback.send(request, stream=stream, timeout=timeout, verify=verify,
                                      cert=cert, proxies=proxies)
        try:
            response = self.sender.send(request.method, url, *ready, body, timeout)
        except requests.RequestException as exc:
            exc.request = request
            raise
        response.request = request
        response.connection = self
        extract_cookies_to_jar(response.cookies, request, response.raw)
        return response

    def close(self) -> None:  # noqa: D102 - requests API
        self.fallback.close()


class LeanSession(HopSession):
    """A requests.Session whose plain requests skip requests' per-request preparation and
    go out on the native transport, over ``connections`` (the run's budget; by default,
    a new one with no limit).

    Example::

        >>> session = LeanSession()
        >>> session.request("GET", "http://127.0.0.1:8000/ok", timeout=5).status_code
        200
    """

    def __init__(self, proxies: Any = None, auth: Any = None, rules: Any = None,
                 headers: Any = None, connections: Connections | None = None) -> None:
        # What requests' path prepares (redirect hops, items with params or hooks) goes
        # out on the native transport too when it is plain, within the same budget:
        # mount() puts every adapter behind one.
        self.sender = NativeSender(connections if connections is not None
                                   else Connections(limit=None))
        super().__init__(proxies, auth, rules, headers)
        self._plain_headers = BoundedCache(_HEADER_CACHE_SIZE)

    def mount(self, prefix, adapter) -> None:  # noqa: D102 - requests API
        if isinstance(adapter, HTTPAdapter) and not isinstance(adapter, NativeAdapter):
            adapter = NativeAdapter(self.sender, adapter)
        super().mount(prefix, adapter)

    def request(self, method, url, params=None, data=None, headers=None, cookies=None,
                files=None, auth=None, timeout=None, allow_redirects=True, proxies=None,
                hooks=None, stream=None, verify=None, cert=None, json=None):
        body = _body(data, json)
        plain_auth = auth is None or (isinstance(auth, tuple) and len(auth) == 2
                                      and all(isinstance(part, str) and part.isascii()
                                              for part in auth))
        ready = None
        if not (params or files or hooks or proxies or body is _NO_BODY or not plain_auth
                or not isinstance(url, str) or not _plain_cookies(cookies)
                or (cookies and any(name.lower() == "cookie" for name in headers or ()))):
            wire_headers = self._headers(method, headers, body, data, json, auth, cookies)
            ready = self.sender.ready(url, wire_headers, verify, cert)
        if ready is None:
            return super().request(method, url, params=params, data=data, headers=headers,
                                   cookies=cookies, files=files, auth=auth, timeout=timeout,
                                   allow_redirects=allow_redirects, proxies=proxies,
                                   hooks=hooks, stream=stream, verify=verify, cert=cert,
                                   json=json)
        response = self.sender.send(method, url, *ready, body, timeout)
        if allow_redirects and response.is_redirect:
            response = self._follow(response, method, url, data, headers, cookies, auth,
                                    json, stream, timeout, verify, cert)
        if not stream:
            response.content  # noqa: B018 - as Session.send does without stream
        return response

    def close(self) -> None:
        self.sender.close()
        super().close()

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
                return known  # the sender reads it and never changes it
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
        if auth is not None:  # requests' HTTPBasicAuth, for the ASCII pairs taken here
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode("latin-1")).decode("ascii")
            merged["Authorization"] = f"Basic {token}"
        wire = dict(merged.items())
        if key is not None:
            self._plain_headers.remember(key, wire)
        return wire

    def _follow(self, response, method, url, data, headers, cookies, auth, json, stream,
                timeout, verify, cert):
        """Hand a redirect to requests, with the request it would have prepared."""
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
