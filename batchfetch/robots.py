"""The robots.txt policy of one origin (RFC 9309): fetched once, it says which URLs the
User-Agent sent may request and the least time between two requests to the host.

Parsing is protego's; this module decides what to fetch, how much of it to read, and what
a status, a redirect chain or a failure means (RFC 9309 2.3.1), so a fetch never raises.
"""
from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin

import gevent
import requests
import urllib3
from protego import Protego
from requests.utils import default_headers, requote_uri
from urllib3.util import SKIP_HEADER

from .errors import DeadlineExceeded, classify
from .kinds import TRANSIENT_ERRORS, ErrorKind
from .redaction import mask_url
from .urls import DEFAULT_PORTS, host_key

__all__ = ["RobotsPolicy", "fetch_policy", "product_token", "robots_url", "sent_user_agent",
           "ROBOTS_BYTE_LIMIT", "ROBOTS_REDIRECT_LIMIT"]

#: Bytes of a robots.txt that are read and parsed: RFC 9309 2.5 asks for at least 500 KiB.
#: The rest is never read; a line cut by the limit is dropped rather than read short.
ROBOTS_BYTE_LIMIT = 500 * 1024
#: Redirects followed to reach a robots.txt (RFC 9309 2.3.1.2: at least five). One more
#: means the robots.txt is unavailable: every URL is allowed, as for a 404.
ROBOTS_REDIRECT_LIMIT = 5

_CHUNK_SIZE = 64 * 1024
_PRODUCT_TOKEN = re.compile(r"[A-Za-z_-]+")  # RFC 9309 2.2.1: letters, "_" and "-"
_ALLOWED = "every URL of this origin is allowed"
_DISALLOWED = "every URL of this origin is disallowed"
#: Failures another attempt may not meet: the requests' own, less the deadline's (a
#: robots.txt that trickles past the deadline will do so again).
_TRANSIENT = TRANSIENT_ERRORS - {ErrorKind.DEADLINE}


def product_token(user_agent: str) -> str:
    """The product token of a User-Agent, the name robots.txt groups are matched against
    (RFC 9309 2.2.1): its leading letters, ``_`` and ``-``; ``""`` when it has none.

    Example::

        >>> product_token("batchfetch/0.1.0"), product_token("Mozilla/5.0 (compatible; X/1)")
        ('batchfetch', 'Mozilla')
    """
    found = _PRODUCT_TOKEN.match(user_agent.strip())
    return found.group() if found else ""


def sent_user_agent(headers: Mapping[str, Any] | None, default: str) -> str:
    """The User-Agent a request carries: a ``User-Agent`` in ``headers`` (any case) wins
    over ``default`` (the run's ``user_agent``). A None value drops requests' header, and
    urllib3 then sends its own (``python-urllib3/2.x``): that is what is matched.

    Example::

        >>> sent_user_agent({"user-agent": "MyBot/2"}, "batchfetch/0.1.0")
        'MyBot/2'
        >>> sent_user_agent({"Accept": "*/*"}, "batchfetch/0.1.0")
        'batchfetch/0.1.0'
    """
    for name, value in (headers or {}).items():
        if name.lower() == "user-agent":
            if value is None:
                return f"python-urllib3/{urllib3.__version__}"
            return value.decode("latin-1") if isinstance(value, bytes) else value
    return default


def robots_url(url: str) -> str:
    """The robots.txt of ``url``'s origin (scheme, host, port), without user info.

    Raises ValueError when ``url`` has no http(s) origin.

    Example::

        >>> robots_url("HTTPS://ann:pw@Example.com:443/a/b?c=1")
        'https://example.com/robots.txt'
    """
    scheme, host, port = host_key(url)
    if scheme not in DEFAULT_PORTS or not host:
        raise ValueError(f"no http(s) origin in {mask_url(url)!r}")
    authority = host if port == DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return f"{scheme}://{authority}/robots.txt"


@dataclasses.dataclass(frozen=True)
class RobotsPolicy:
    """What one origin's robots.txt lets a User-Agent request, and how often.

    Build one with :meth:`parse` (a robots.txt that was fetched), :meth:`allow_all` or
    :meth:`disallow_all` (what its status or a failure means), or :func:`fetch_policy`.
    The rules apply to the whole origin, even when a redirect reached the robots.txt
    elsewhere. ``reason`` says how the policy was decided.

    Example::

        >>> policy = RobotsPolicy.parse("http://h/robots.txt", "User-agent: *\\n"
        ...                             "Disallow: /private\\nCrawl-delay: 2\\n", "batchfetch/1")
        >>> policy.allows("http://h/private/a"), policy.allows("http://h/a"), policy.delay
        (False, True, 2.0)
        >>> policy.message
        "disallowed by http://h/robots.txt for user agent 'batchfetch/1'"
    """

    #: The robots.txt of the origin.
    url: str
    #: The User-Agent the policy answers for; groups are matched on its product token.
    user_agent: str
    #: How the policy was decided, e.g. "http://h/robots.txt answered 404 Not Found: ...".
    reason: str
    #: The parsed robots.txt; None for a policy that allows or disallows every URL.
    rules: Protego | None = dataclasses.field(default=None, repr=False)
    #: True when every URL of the origin is disallowed (a 5xx, a 429, a failed fetch).
    disallows_all: bool = False
    #: True when the fetch failed in a way another attempt may not (a reset, a timeout).
    transient: bool = False

    @classmethod
    def parse(cls, url: str, text: str, user_agent: str, reason: str = "") -> RobotsPolicy:
        """The policy of the robots.txt ``url`` whose content is ``text``."""
        return cls(url, user_agent, reason or f"the rules of {url}", Protego.parse(text))

    @classmethod
    def allow_all(cls, url: str, user_agent: str, reason: str) -> RobotsPolicy:
        """Every URL allowed, no delay: robots.txt is unavailable (4xx but 429)."""
        return cls(url, user_agent, reason)

    @classmethod
    def disallow_all(cls, url: str, user_agent: str, reason: str) -> RobotsPolicy:
        """Every URL disallowed: robots.txt is unreachable (5xx, 429, a failed fetch)."""
        return cls(url, user_agent, reason, disallows_all=True)

    def for_user_agent(self, user_agent: str) -> RobotsPolicy:
        """The same robots.txt read for another User-Agent (an item's own header)."""
        return dataclasses.replace(self, user_agent=user_agent)

    def allows(self, url: str) -> bool:
        """Whether ``url`` (of this origin) may be requested with :attr:`user_agent`."""
        if self.rules is None:
            return not self.disallows_all
        return self.rules.can_fetch(url, self._token)

    @functools.cached_property
    def _token(self) -> str:
        # Asked for every URL admitted to the origin; the User-Agent never changes (another
        # one is another policy, see for_user_agent).
        return product_token(self.user_agent)

    @functools.cached_property
    def delay(self) -> float | None:
        """Seconds to leave between two requests to the host: the larger of Crawl-delay and
        the interval a Request-rate gives (``1/10s``: 10.0); None when neither is set.
        A Request-rate's time-of-day window is ignored: the floor holds all day."""
        if self.rules is None:
            return None
        delays = [self.rules.crawl_delay(self._token)]
        rate = self.rules.request_rate(self._token)
        if rate is not None:
            delays.append(rate.seconds / rate.requests)
        return max((delay for delay in delays if delay is not None), default=None)

    @property
    def message(self) -> str:
        """What the row of a URL this policy disallows says."""
        if self.rules is None:
            return self.reason
        return f"disallowed by {self.url} for user agent {self.user_agent!r}"


def fetch_policy(session: requests.Session, url: str, request_kwargs: Mapping[str, Any],
                 user_agent: str, deadline: float | None = None) -> RobotsPolicy:
    """Fetch the robots.txt of ``url``'s origin and say what it allows. Never raises
    (except GreenletExit when cancelled): every failure is a policy.

    ``request_kwargs`` are a request's keywords (``RequestSettings.kwargs``); only
    ``timeout``, ``verify``, ``cert`` and ``proxies`` are used, the proxies for every hop.
    ``user_agent`` is sent, and groups are matched on its product token (``""``: no
    User-Agent header, only the ``*`` group applies). ``deadline`` bounds the whole fetch.

    The request goes through the session's connection pools (cooperative: call it from
    any greenlet) but not its headers, auth or cookie jar: robots.txt gets no
    credentials, and its cookies reach no other request. Answers (RFC 9309 2.3.1):

    - 2xx: the first :data:`ROBOTS_BYTE_LIMIT` bytes are parsed (UTF-8, bad bytes replaced);
    - a redirect: followed, across hosts too, at most :data:`ROBOTS_REDIRECT_LIMIT` times;
      one more, or a 3xx without a Location, means unavailable: every URL allowed;
    - 4xx but 429: unavailable, every URL allowed;
    - 429, 5xx, or no answer (refused, timeout, reset, deadline, TLS, a bad Location):
      unreachable, every URL disallowed.

    Example::

        >>> from batchfetch.testing import LoopbackServer
        >>> with LoopbackServer() as server, requests.Session() as session:
        ...     server.robots_txt = "/status/503"
        ...     fetch_policy(session, server.url("/a"), {"timeout": 5}, "batchfetch/1").allows(
        ...         server.url("/a"))
        False
    """
    robots = robots_url(url)
    timer = gevent.Timeout(deadline, DeadlineExceeded(deadline)) if deadline else None
    if timer is not None:
        timer.start()
    try:
        return _fetch(session, robots, request_kwargs, user_agent)
    except Exception as exc:  # noqa: BLE001 - every failure is a policy
        kind, text = classify(exc)
        policy = RobotsPolicy.disallow_all(
            robots, user_agent,
            f"{robots} could not be fetched ({kind}: {text}): {_DISALLOWED} (RFC 9309 2.3.1.4)")
        return dataclasses.replace(policy, transient=kind in _TRANSIENT)
    finally:
        if timer is not None:
            timer.close()


def _fetch(session: requests.Session, robots: str, request_kwargs: Mapping[str, Any],
           user_agent: str) -> RobotsPolicy:
    # The adapter, not session.request: no session headers, auth or cookie jar, and a
    # redirect limit of our own without touching the shared session's max_redirects.
    sending = {name: request_kwargs[name] for name in ("timeout", "verify", "cert", "proxies")
               if name in request_kwargs}
    headers = default_headers()
    headers["User-Agent"] = user_agent or SKIP_HEADER  # else urllib3 would send its own
    target = robots
    for _ in range(ROBOTS_REDIRECT_LIMIT + 1):
        prepared = requests.Request("GET", target, headers=headers).prepare()
        response = session.get_adapter(target).send(prepared, stream=True, **sending)
        location = session.get_redirect_target(response)
        if location is None:
            return _answered(response, robots, target, user_agent)
        response.close()
        target = urljoin(target, requote_uri(location))
    return RobotsPolicy.allow_all(
        robots, user_agent, f"{robots} redirected more than {ROBOTS_REDIRECT_LIMIT} times: "
                            f"unavailable, {_ALLOWED} (RFC 9309 2.3.1.2)")


def _answered(response: requests.Response, robots: str, target: str,
              user_agent: str) -> RobotsPolicy:
    """The policy a final (not redirecting) response gives."""
    status = response.status_code
    redirected = f" (redirected to {mask_url(target)})" if target != robots else ""
    if 200 <= status < 300:
        text, cut = _read_text(response)
        kept = f", its first {ROBOTS_BYTE_LIMIT} bytes" if cut else ""
        return RobotsPolicy.parse(robots, text, user_agent,
                                  f"the rules of {robots}{redirected}{kept}")
    response.close()
    answered = f"{robots} answered {status} {response.reason or ''}".rstrip() + redirected
    if status < 400 or (status < 500 and status != 429):
        return RobotsPolicy.allow_all(robots, user_agent,
                                      f"{answered}: {_ALLOWED} (RFC 9309 2.3.1.3)")
    return RobotsPolicy.disallow_all(robots, user_agent,
                                     f"{answered}: {_DISALLOWED} (RFC 9309 2.3.1.4)")


def _read_text(response: requests.Response) -> tuple[str, bool]:
    """The decoded body up to ROBOTS_BYTE_LIMIT bytes, and whether it was cut there."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(_CHUNK_SIZE):
            chunks.append(chunk)
            size += len(chunk)
            if size > ROBOTS_BYTE_LIMIT:
                break  # and close: the rest is never read
    finally:
        response.close()
    body = b"".join(chunks)
    cut = len(body) > ROBOTS_BYTE_LIMIT
    if cut:
        end = ROBOTS_BYTE_LIMIT
        if body[end:end + 1] not in (b"\n", b"\r"):
            # The last line goes on past the limit: "Allow: /a" of "Allow: /admin-public"
            # would allow more than the site said.
            end = max(body.rfind(b"\n", 0, end), body.rfind(b"\r", 0, end)) + 1
        body = body[:end]
    # utf-8-sig drops a byte order mark, which protego would read as part of the first
    # field and so lose the first line.
    return body.decode("utf-8-sig", errors="replace"), cut
