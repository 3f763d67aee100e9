"""The requests.Session a transport sends through, and the request settings resolved once.

requests re-reads the environment (proxies, no_proxy, netrc, CA bundle) on every
request when ``trust_env`` is on; batchfetch turns that off and resolves the
same settings itself, once per run and once per host.
"""
from __future__ import annotations

import os
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from ..config import FetchOptions
from ..inputs import RequestSpec
from ._ghc import PROBLEMS
from .connections import Connections
from .fastpath import LeanSession
from .hops import HopSession, HostEnvironment
from .tracked import pool_classes

__all__ = ["build_session", "RequestSettings"]


class _StoreNothing(DefaultCookiePolicy):
    """Keep the shared jar empty so one response's cookies never reach another item.

    requests still carries cookies along one redirect chain (it keeps them in
    the prepared request's own jar), which is what a login redirect needs.
    """

    def set_ok(self, cookie, request) -> bool:  # noqa: D102 - http.cookiejar API
        return False


def build_session(options: FetchOptions, budget: Connections | None = None
                  ) -> requests.Session:
    """A Session for one run: pools sized to the concurrency, no env lookups, no shared cookies.

    At most ``concurrency`` connections are open at once (or ``budget.limit``, with a
    budget given), whichever path opened them: both count against one budget. With
    ``fast_path`` (and geventhttpclient as the tests cover it), a LeanSession: plain
    requests on the native transport. Whatever is not plain goes to urllib3's pools:
    ``pool_maxsize`` is the most requests one host can have in flight, so urllib3 never
    has to discard a connection ("Connection pool is full"); ``pool_connections`` keeps a
    pool for every host that can be in flight at once, so keep-alive survives.

    Example::

        >>> type(build_session(FetchOptions(concurrency=8))).__name__
        'LeanSession'
        >>> session = build_session(FetchOptions(concurrency=8, fast_path=False))
        >>> session.get_adapter("http://127.0.0.1/")._pool_maxsize
        8
    """
    if budget is None:
        budget = Connections(limit=options.concurrency)
    if options.fast_path and not PROBLEMS:
        session = LeanSession(proxies=options.proxies, auth=options.auth, rules=options.hosts,
                              headers=options.headers, connections=budget)
    else:
        session = HopSession(proxies=options.proxies, auth=options.auth, rules=options.hosts,
                             headers=options.headers)
    session.trust_env = False
    session.max_redirects = options.max_redirects
    session.headers["User-Agent"] = options.user_agent
    session.cookies.set_policy(_StoreNothing())
    # A hosts rule's concurrency may pass the run's per-host limit.
    per_host = options.concurrency if options.hosts is not None else options.host_limit
    adapter = HTTPAdapter(pool_connections=max(10, 2 * options.concurrency),
                          pool_maxsize=per_host, max_retries=0, pool_block=False)
    adapter.poolmanager.pool_classes_by_scheme = pool_classes(budget)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _environment_ca_bundle() -> str | None:
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


class RequestSettings:
    """Turns a RequestSpec into ``Session.request`` keywords, with the environment read once.

    An explicit ``verify`` (False or a CA bundle path) wins over REQUESTS_CA_BUNDLE;
    proxies and auth come from ``environment`` (the session's: a host rule's, else explicit
    ones, else the environment's, looked up once per host for first requests and redirect
    hops alike); a host rule's timeouts replace the run's for its hosts.
    """

    def __init__(self, options: FetchOptions, environment: HostEnvironment) -> None:
        self.options = options
        self._environment = environment
        self._rules = options.hosts
        verify = options.verify
        if verify is True:
            verify = _environment_ca_bundle() or True
        self._common = {
            "timeout": options.timeout,
            "verify": verify,
            "cert": options.cert,
            "allow_redirects": options.allow_redirects,
            "stream": True,
        }

    def kwargs(self, spec: RequestSpec, host: Any) -> dict[str, Any]:
        """Keywords for ``grequests.AsyncRequest(method, url, **kwargs)``."""
        proxies, auth = self._environment(spec.url, host)
        kwargs = dict(self._common)
        if self._rules is not None:
            rule = self._rules.for_key(host)
            if rule is not None and (rule.timeout or rule.connect_timeout):
                kwargs["timeout"] = rule.timeout_over(self.options.timeout)
        kwargs.update(headers=spec.headers, params=spec.params, cookies=spec.cookies,
                      proxies=proxies, auth=auth)
        if spec.json is not None:
            kwargs["json"] = spec.json
        elif spec.data is not None:
            kwargs["data"] = spec.data
        if spec.files is not None:
            kwargs["files"] = spec.files  # requests' own path sends multipart bodies
        return kwargs
