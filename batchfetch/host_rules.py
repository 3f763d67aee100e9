"""HostRules: settings by host pattern (``--hosts hosts.toml``, ``hosts=``), read from a TOML
file or a mapping of the same shape, validated once, and looked up per host.

One table per pattern, every key optional::

    ["api.example.com"]
    concurrency = 4                  # requests in flight at once to this host
    rate = 10                        # attempts started per second to this host
    retries = 5                      # extra attempts for retryable failures
    timeout = [3, 20]                # seconds: a number, or [connect, read]
    connect_timeout = 2              # replaces the connect part only
    headers = { Accept = "application/json", X-Api-Key = { env = "API_KEY" } }
    auth = { bearer = { env = "API_TOKEN" } }   # or { user = "ann", password = { env = "PW" } }

    ["*.cdn.example"]
    proxy = "http://127.0.0.1:3128"  # or false: straight to the host, whatever the run's

    ["*"]
    timeout = 10

Patterns, always quoted (a bare ``[api.example.com]`` is a TOML table ``api`` holding a table
``example``): a host name (``api.example.com``; any case, an international name as such or in
punycode), ``*.suffix`` (every subdomain of ``suffix``, at any depth, but not ``suffix``
itself), or ``*`` (every host); each may end in ``:port`` to match that port only. One pattern
decides all of a host's settings (they are not merged): the most specific, that is a host
name before any wildcard, a longer wildcard before a shorter one, ``*`` last, and at each of
these the pattern with the request's port before the one without. ``concurrency`` and ``rate``
hold for each matching host (scheme, name, port) on its own, not for a pattern's hosts together.

Text values (headers, auth, proxy) may be ``{env = "NAME"}``: the variable is read when the
rules are built, a missing one is an error naming it, and its value is never shown.

Headers win over the run's headers and lose to an item's own. ``auth`` sends an Authorization
header (basic or bearer) in place of the run's auth and netrc's for the host; an item's own
Authorization header wins over it. A redirect carries the pattern's headers and auth only as
far as requests carries an Authorization header: to the same host, scheme and port (http to
https on the default ports too); at the first hop anywhere else they are dropped, and no hop
adds another host's. Timeouts are the first request's for its whole redirect chain; the proxy
is each hop's own host's. An unknown key or a bad value raises
:class:`~batchfetch.errors.HostRulesError` naming the file, the pattern and the key.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import os
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Union

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from ._host_table import NOT_A_PATTERN, RULE_KEYS, pattern_key, read_document
from .errors import HostRulesError, OptionError
from .redaction import MASK, mask_passwords, shown_option
from .urls import HostKeys

__all__ = ["HostRule", "HostRules", "MatchedPatterns", "RULE_KEYS"]

#: What ``hosts=`` accepts: a TOML file's path, a mapping of patterns to tables, HostRules.
HostsValue = Union[str, "os.PathLike[str]", Mapping[str, Any], "HostRules"]


@dataclasses.dataclass(frozen=True)
class HostRule:
    """The settings of one host pattern; None (or empty) where the pattern sets nothing.

    Built by :class:`HostRules` from the file, which validated every value. ``auth`` is a
    ``(user, password)`` pair for basic auth and ``bearer`` a token; ``proxy`` is a URL, or
    False for no proxy at all; ``hidden_headers`` names the headers whose values came from
    the environment. The repr shows no secret.

    Example::

        >>> HostRule("api.example.com", rate=2.0, bearer="t0ken")
        HostRule(pattern='api.example.com', rate=2.0, bearer='***')
    """

    pattern: str
    concurrency: int | None = None
    rate: float | None = None
    retries: int | None = None
    timeout: tuple[float, float] | None = None
    connect_timeout: float | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    auth: tuple[str, str] | None = None
    bearer: str | None = None
    proxy: str | bool | None = None
    hidden_headers: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        headers = dict(self.headers)
        if self.auth is not None:
            user, password = (part.encode("latin-1") for part in self.auth)
            headers["Authorization"] = "Basic " + base64.b64encode(
                user + b":" + password).decode("ascii")
        elif self.bearer is not None:
            headers["Authorization"] = f"Bearer {self.bearer}"
        # Not a field: derived, so neither compared nor shown.
        object.__setattr__(self, "_request_headers", headers)

    @property
    def request_headers(self) -> dict[str, str]:
        """The headers a request to a matching host gets: ``headers`` and the auth's
        Authorization (the same dict each time: do not change it)."""
        return self._request_headers  # type: ignore[attr-defined]

    @property
    def proxies(self) -> dict[str, str] | None:
        """``proxies=`` for requests to a matching host; None when the pattern sets none."""
        if self.proxy is None:
            return None
        return {} if self.proxy is False else {"http": self.proxy, "https": self.proxy}

    def timeout_over(self, timeout: tuple[float | None, float | None]
                     ) -> tuple[float | None, float | None]:
        """The ``(connect, read)`` timeout for a matching host, given the run's.

        Example::

            >>> HostRule("h", connect_timeout=1.0).timeout_over((10.0, 30.0))
            (1.0, 30.0)
        """
        connect, read = self.timeout or timeout
        return (connect if self.connect_timeout is None else self.connect_timeout, read)

    def __repr__(self) -> str:
        shown = [f"pattern={self.pattern!r}"]
        for field in dataclasses.fields(self)[1:-1]:
            value = getattr(self, field.name)
            if value is None or (field.name == "headers" and not value):
                continue
            if field.name == "headers":
                value = {name: MASK if name in self.hidden_headers else text
                         for name, text in shown_option("headers", value).items()}
            elif field.name == "auth":
                value = shown_option("auth", value)
            elif field.name == "bearer":
                value = MASK
            elif isinstance(value, str):
                value = mask_passwords(value)
            shown.append(f"{field.name}={value!r}")
        return f"HostRule({', '.join(shown)})"


@dataclasses.dataclass(frozen=True)
class HostRules:
    """The per-host settings of a run: one :class:`HostRule` per pattern, in file order.

    ``source`` names where they came from in messages (the file as given, or ``hosts``).
    Build them with :meth:`load`, :meth:`from_mapping` or :meth:`coerce`; frozen and
    picklable (worker processes get them with the options, secrets already read).

    Example::

        >>> rules = HostRules.from_mapping({"*.example.com": {"rate": 5},
        ...                                 "api.example.com": {"concurrency": 2}})
        >>> rules.for_host("API.example.com").concurrency, rules.for_host("a.b.example.com").rate
        (2, 5.0)
        >>> rules.for_host("example.com") is None   # *.example.com: subdomains only
        True
    """

    rules: tuple[HostRule, ...] = ()
    source: str = "hosts"

    def __post_init__(self) -> None:
        index: dict[tuple[str, int | None], HostRule] = {}
        for rule in self.rules:
            try:
                key = pattern_key(rule.pattern)
            except ValueError:
                raise HostRulesError(self.source, rule.pattern, None, NOT_A_PATTERN) from None
            if key in index:
                raise HostRulesError(self.source, rule.pattern, None, "the same pattern as "
                                     f"{json.dumps([index[key].pattern], ensure_ascii=False)}")
            index[key] = rule
        # Not fields: the lookup index and a parse cache, rebuilt after unpickling.
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_keys", HostKeys())

    def __getstate__(self) -> dict[str, Any]:
        return {"rules": self.rules, "source": self.source}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        self.__post_init__()

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        patterns = ", ".join(json.dumps(rule.pattern, ensure_ascii=False) for rule in self.rules)
        return f"<HostRules from {self.source!r}: {patterns or 'no patterns'}>"

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "HostRules":
        """Read the TOML file at ``path``; raises HostRulesError naming it.

        Example::

            >>> with open("hosts.toml", "w") as toml:
            ...     _ = toml.write('["api.example.com"]\\nrate = 10\\n'
            ...                    '["*.cdn.example"]\\nproxy = false\\n')
            >>> HostRules.load("hosts.toml")
            <HostRules from 'hosts.toml': "api.example.com", "*.cdn.example">
        """
        source = os.fspath(path)
        try:
            with open(source, "rb") as stream:
                document = tomllib.load(stream)
        except OSError as exc:
            raise HostRulesError(source, None, None, f"cannot read it: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise HostRulesError(source, None, None, f"not UTF-8 text ({exc.reason} at byte "
                                                     f"{exc.start})") from None
        except tomllib.TOMLDecodeError as exc:
            raise HostRulesError(source, None, None, f"not valid TOML: {exc}") from None
        return cls.from_mapping(document, source)

    @classmethod
    def from_mapping(cls, document: Mapping[str, Any], source: str = "hosts",
                     environ: Mapping[str, str] | None = None) -> "HostRules":
        """Validate ``document`` (pattern -> table of settings, as the file reads) and read
        its ``{env = "NAME"}`` values from ``environ`` (default: ``os.environ``).

        Raises HostRulesError naming ``source``, the pattern and the key.
        """
        environ = os.environ if environ is None else environ
        return cls(tuple(HostRule(pattern, **values)
                         for pattern, values in read_document(document, source, environ)),
                   source)

    @classmethod
    def coerce(cls, value: HostsValue) -> "HostRules":
        """What ``FetchOptions(hosts=...)`` accepts as HostRules: a path, a mapping, or
        HostRules (returned as it is)."""
        if isinstance(value, HostRules):
            return value
        if isinstance(value, (str, os.PathLike)):
            return cls.load(value)
        if isinstance(value, Mapping):
            return cls.from_mapping(value)
        raise OptionError("hosts", value, "the path of a TOML file, a mapping of host patterns "
                                          "to settings, or HostRules")

    def for_host(self, host: str, port: int | None = None) -> HostRule | None:
        """The rule deciding the settings of ``host`` (on ``port``, if given), or None."""
        if not host.isascii() or host != host.lower():
            try:
                host = _normal_host(host)
            except ValueError:
                return None
        index = self._index  # type: ignore[attr-defined]
        for name in _names_matching(host):
            if port is not None:
                rule = index.get((name, port))
                if rule is not None:
                    return rule
            rule = index.get((name, None))
            if rule is not None:
                return rule
        return None

    def for_key(self, key: tuple[str, str, int]) -> HostRule | None:
        """The rule for the dispatcher's host key ``(scheme, host, port)``, or None.

        Example::

            >>> HostRules.from_mapping({"*": {"retries": 0}}).for_key(("http", "h", 80)).retries
            0
        """
        return self.for_host(key[1], key[2])

    def for_url(self, url: str) -> HostRule | None:
        """The rule for the host of ``url``, or None (a URL that does not parse has none)."""
        try:
            return self.for_key(self._keys(url))  # type: ignore[attr-defined]
        except ValueError:
            return None

    def unused(self, urls: Iterable[str]) -> list[str]:
        """The patterns that decided the settings of none of ``urls``, in file order."""
        matched = MatchedPatterns(self)
        for url in urls:
            matched.add(url)
        return matched.unused()


class MatchedPatterns:
    """Which patterns decided the settings of at least one URL added (a set no larger than
    the file), for the end summary's note on patterns that matched no host.

    Example::

        >>> matched = MatchedPatterns(HostRules.from_mapping({"a.test": {}, "b.test": {}}))
        >>> matched.add("http://a.test/x"); matched.unused()
        ['b.test']
    """

    def __init__(self, rules: HostRules) -> None:
        self.rules = rules
        self._matched: set[str] = set()

    def add(self, url: str) -> None:
        """Count the host of ``url``."""
        rule = self.rules.for_url(url)
        if rule is not None:
            self._matched.add(rule.pattern)

    def unused(self) -> list[str]:
        """The patterns no URL added matched, in file order."""
        return [rule.pattern for rule in self.rules.rules if rule.pattern not in self._matched]

    def note(self) -> str:
        """The end summary's line naming the patterns no URL added matched; '' if none."""
        unused = self.unused()
        if not unused:
            return ""
        listed = ", ".join(json.dumps([pattern], ensure_ascii=False) for pattern in unused)
        return f"{self.rules.source}: no host fetched matched {listed}"


def _normal_host(host: str) -> str:
    """``host`` as urllib3 (and so the dispatcher's host key) spells it: lower case, IDNA."""
    try:
        parsed = parse_url("http://" + host)
    except LocationParseError as exc:
        raise ValueError(str(exc)) from None
    if parsed.host is None or parsed.port is not None or parsed.path or parsed.auth:
        raise ValueError(host)
    return parsed.host


def _names_matching(host: str) -> Iterator[str]:
    """The pattern names that match ``host``, most specific first."""
    yield host
    dot = host.find(".")
    while dot >= 0:
        yield "*" + host[dot:]
        dot = host.find(".", dot + 1)
    yield "*"
