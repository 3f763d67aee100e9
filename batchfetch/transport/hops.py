"""HopSession: the requests.Session of a run, deciding what each hop of a redirect chain
carries: the user's cookies only to the host they were given for, a host rule's headers and
auth only as far as an Authorization header goes, and the proxy and netrc credentials of the
hop's own host; and saying so when a Location cannot be followed.

requests sends cookies given as a dict (``cookies=``, ``-b``) to every host a redirect
reaches, https to http included, as ``curl -b`` does; a browser would not. And with
``trust_env`` off (batchfetch reads the environment itself, once per host) requests gives
every hop the first hop's proxies and no netrc credentials, where requests with
``trust_env`` on looks both up again for each hop's host.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.exceptions as rex
from requests.structures import CaseInsensitiveDict
from requests.utils import get_environ_proxies, get_netrc_auth

from .._cache import BoundedCache
from ..errors import RedirectLocationError
from ..inputs import host_key

__all__ = ["HopSession", "HostEnvironment", "HOST_CACHE_SIZE"]

#: Hosts whose proxies and netrc credentials are remembered; a run over more distinct
#: hosts starts the cache again rather than growing with the input.
HOST_CACHE_SIZE = 4096

#: What requests raises for a URL it cannot send: from a Location, a RedirectLocationError.
_URL_ERRORS = (rex.InvalidURL, rex.InvalidSchema, rex.MissingSchema)


class _GivenCookiesPolicy(DefaultCookiePolicy):
    """Sends the cookies the user gave only to ``host`` (any port, RFC 6265), and only over
    https when they were given for an https URL; cookies a response set within the chain
    follow the usual rules.

    The user's cookies are the ones without a domain: requests' ``cookiejar_from_dict``
    makes them so, while the cookie jar gives every cookie a response sets a domain.
    """

    def __init__(self, host: str | None, https_only: bool) -> None:
        super().__init__()
        self.host = host
        self.https_only = https_only

    def return_ok(self, cookie, request) -> bool:  # noqa: D102 - http.cookiejar API
        if cookie.domain:
            return super().return_ok(cookie, request)
        if self.https_only and request.type != "https":
            return False
        return urlsplit(request.get_full_url()).hostname == self.host


class HostEnvironment:
    """The proxies and basic auth of each host: its host rule's (``rules``, from ``hosts``),
    else the run's own when it gives them, else the environment's (``*_proxy`` and
    ``NO_PROXY``, netrc), looked up once per host, for the first request and every redirect
    hop alike. A rule with auth sends it as a header (``inputs.to_spec``): its host gets no
    auth here, so neither the run's nor netrc's replaces it.

    Example::

        >>> environment = HostEnvironment(proxies=None, auth=None)
        >>> environment("http://127.0.0.1/a")   # no *_proxy variables, no netrc entry
        ({}, None)
    """

    def __init__(self, proxies: Mapping[str, str] | None, auth: Any, rules: Any = None) -> None:
        self.proxies = None if proxies is None else dict(proxies)
        self.auth = auth
        #: The run's :class:`~batchfetch.host_rules.HostRules`, or None.
        self.rules = rules
        self._per_host = BoundedCache(HOST_CACHE_SIZE)

    def __call__(self, url: str, host: Any = None) -> tuple[dict[str, str], Any]:
        """``(proxies, auth)`` for ``url``; ``host`` is its host key, when known."""
        if host is None:
            try:
                host = host_key(url)
            except ValueError:  # a Location that fails later, where requests says why
                return self._look_up(url, None)
        settings = self._per_host.get(host)
        if settings is None:
            settings = self._per_host.remember(host, self._look_up(url, host))
        return settings

    def _look_up(self, url: str, host: Any) -> tuple[dict[str, str], Any]:
        rule = None
        if self.rules is not None:
            rule = self.rules.for_key(host) if host is not None else self.rules.for_url(url)
        if rule is not None and rule.proxies is not None:
            proxies = rule.proxies
        else:
            proxies = self.proxies if self.proxies is not None else get_environ_proxies(url)
        if rule is not None and "Authorization" in rule.request_headers:
            return proxies, None
        return proxies, self.auth if self.auth is not None else get_netrc_auth(url)


class HopSession(requests.Session):
    """A requests.Session whose redirects re-decide cookies, host rules, proxies and netrc
    per hop.

    ``proxies``, ``auth`` and ``headers`` are the run's own (None: the environment's proxies
    and netrc); ``rules`` the run's HostRules. Each hop uses its own host's proxies (its
    rule's, else the run's, else the environment's with ``NO_PROXY``) instead of the first
    hop's; without explicit auth, each hop gets the netrc credentials of its own host, if
    any, unless its rule has auth (and not over plain http after https, where requests
    would send them in clear text). The headers of the first host's rule (its auth's
    Authorization among them) go as far as requests lets an Authorization header go; past
    that, the run's header of the same name (if any) takes the place of each, and an item's
    own value (where it overrode the rule's) stays. ``environment`` answers for the first
    request too (``session.RequestSettings``), so each host's are looked up once.

    Example::

        >>> session = HopSession()
        >>> session.get("http://127.0.0.1:8000/redirect-to?url=http://localhost:8000/cookies",
        ...             cookies={"sid": "1"}).json()   # localhost is another host
        {'cookies': {}}
    """

    def __init__(self, proxies: Mapping[str, str] | None = None, auth: Any = None,
                 rules: Any = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.environment = HostEnvironment(proxies, auth, rules)
        #: The run's headers: what a hop that leaves a rule's host sends in place of the
        #: rule's headers of the same names.
        self.run_headers = CaseInsensitiveDict(headers or {})

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        prepared = super().prepare_request(request)
        # Redirect hops copy this jar and its policy: every hop asks the same question.
        url = prepared.url or ""
        prepared._cookies.set_policy(_GivenCookiesPolicy(urlsplit(url).hostname,
                                                         url.lower().startswith("https:")))
        return prepared

    def resolve_redirects(self, resp: requests.Response, req: requests.PreparedRequest,
                          *args: Any, **kwargs: Any) -> Iterator[requests.Response]:
        # A Location that cannot be requested surfaced as whatever failed to parse it (a
        # bare ValueError from urlparse, 'Port out of range'): say it was the redirect.
        last = resp
        try:
            for last in super().resolve_redirects(resp, req, *args, **kwargs):
                yield last
        except ValueError as exc:
            if isinstance(exc, rex.RequestException) and not isinstance(exc, _URL_ERRORS):
                raise
            raise RedirectLocationError(last.headers.get("Location", ""), str(exc)) from exc

    def rebuild_proxies(self, prepared_request: requests.PreparedRequest,
                        proxies: Any) -> dict[str, str]:
        if self.environment.proxies is None or self.environment.rules is not None:
            proxies = self.environment(prepared_request.url)[0]
        return super().rebuild_proxies(prepared_request, proxies)

    def rebuild_auth(self, prepared_request: requests.PreparedRequest,
                     response: requests.Response) -> None:
        super().rebuild_auth(prepared_request, response)  # drops Authorization off-host
        if self.environment.rules is not None:
            self._drop_host_rule_headers(prepared_request, response)
        if self.environment.auth is not None:
            return
        if (urlsplit(response.request.url).scheme == "https"
                and urlsplit(prepared_request.url).scheme != "https"):
            return  # requests would put them back, in clear text; the given cookies stay too
        credentials = self.environment(prepared_request.url)[1]
        if credentials is not None:  # as requests with trust_env does for the new host
            prepared_request.prepare_auth(credentials)

    def _drop_host_rule_headers(self, prepared_request: requests.PreparedRequest,
                                response: requests.Response) -> None:
        """Take the first host's rule headers off a hop that leaves the host (where requests
        drops Authorization; hops copy the previous hop, so no later one gets them back),
        putting back the run's own headers of the same names."""
        if not self.should_strip_auth(response.request.url, prepared_request.url):
            return
        first = (response.history[0] if response.history else response).request
        rule = self.environment.rules.for_url(first.url)
        headers = prepared_request.headers
        for name, value in rule.request_headers.items() if rule is not None else ():
            if headers.get(name) == value:  # not an item's own value
                del headers[name]
                if name in self.run_headers:
                    headers[name] = self.run_headers[name]
