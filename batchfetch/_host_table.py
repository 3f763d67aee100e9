"""Reading one host-rules document (see :mod:`batchfetch.host_rules`): each pattern checked,
each table's values validated into HostRule keywords, every error naming the file, the pattern
and the key, and never a secret.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from .errors import HostRulesError
from .headers import header_problem, is_latin1
from .redaction import mask_passwords
from .urls import proxy_url_problem

__all__ = ["NOT_A_PATTERN", "RULE_KEYS", "pattern_key", "read_document"]

#: The keys a pattern's table may hold.
RULE_KEYS = ("concurrency", "rate", "retries", "timeout", "connect_timeout", "headers", "auth",
             "proxy")
# A host as urllib3 normalises it (lower case, IDNA punycode): a name or an IPv6 literal.
_HOST = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*|\[[0-9a-f:.]+\]", re.ASCII)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
#: What is wrong with a pattern that is not one.
NOT_A_PATTERN = ('not a host pattern: expected a host name ("api.example.com"), "*.suffix" '
                 '(its subdomains) or "*" (every host), each with an optional ":port"')


def read_document(document: Any, source: str, environ: Mapping[str, str]
                  ) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(pattern, HostRule keywords)`` for each table of ``document``, validated, with
    ``{env = "NAME"}`` values read from ``environ``; HostRulesError at the first problem."""
    if not isinstance(document, Mapping):
        raise HostRulesError(source, None, None, "expected a mapping of host patterns to "
                                                 f"tables of settings, got {_kind(document)}")
    for pattern, table in document.items():
        if not isinstance(pattern, str):
            raise HostRulesError(source, None, None, f"a host pattern must be a string, got "
                                                     f"{_kind(pattern)}")
        if not isinstance(table, Mapping):
            raise HostRulesError(source, None, _key(pattern), "expected a table of settings "
                                 'under a quoted host pattern, such as ["api.example.com"], '
                                 f"got {_kind(table)}")
        yield pattern, _TableReader(source, pattern, environ).values(table)


def pattern_key(pattern: str) -> tuple[str, int | None]:
    """``(name, port)`` of a pattern: a normalised host name, ``*.suffix`` or ``*``, and the
    port or None; ValueError if it is none of these."""
    text = pattern.strip()
    prefix = ""
    if text.startswith("*."):
        prefix, text = "*.", text[2:]
    elif text == "*" or text.startswith("*:"):
        port = text[2:]
        if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(pattern)
        return "*", int(port) if port else None
    try:
        parsed = parse_url("http://" + text)
    except LocationParseError:
        raise ValueError(pattern) from None
    if (not parsed.host or not _HOST.fullmatch(parsed.host) or parsed.path or parsed.auth
            or parsed.query is not None or parsed.fragment is not None or parsed.port == 0
            or text.endswith(":")):
        raise ValueError(pattern)
    return prefix + parsed.host, parsed.port



def _key(name: str) -> str:
    """A key as TOML writes it: bare when it can be, else quoted."""
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def _shown(value: Any) -> str:
    """A value that is no secret, as TOML writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_shown, value)) + "]"
    return _kind(value)


def _kind(value: Any) -> str:
    """What a value is, without its contents (it may be a secret)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, Mapping):
        keys = ", ".join(_key(str(key)) for key in value)
        return f"a table with the keys {keys}" if value else "an empty table"
    if isinstance(value, (list, tuple)):
        return f"an array of {len(value)}"
    return type(value).__name__


class _TableReader:
    """Validates one pattern's table; every error names the source, the pattern and the key."""

    def __init__(self, source: str, pattern: str, environ: Mapping[str, str]) -> None:
        self.source, self.pattern, self.environ = source, pattern, environ

    def fail(self, key: str | None, message: str) -> HostRulesError:
        return HostRulesError(self.source, self.pattern, key, message)

    def values(self, table: Mapping[str, Any]) -> dict[str, Any]:
        try:
            pattern_key(self.pattern)
        except ValueError:
            raise self.fail(None, NOT_A_PATTERN) from None
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key not in RULE_KEYS:
                hint = (' (a host name with dots goes in quotes: ["api.example.com"])'
                        if isinstance(value, Mapping) else "")
                raise self.fail(_key(str(key)), f"unknown key; the keys are "
                                                f"{', '.join(RULE_KEYS)}{hint}")
            values[key] = value
        if "concurrency" in values:
            values["concurrency"] = self.integer("concurrency", values["concurrency"], 1)
        if "retries" in values:
            values["retries"] = self.integer("retries", values["retries"], 0)
        for key in ("rate", "connect_timeout"):
            if key in values:
                values[key] = self.number(key, values[key], values[key])
        if "timeout" in values:
            values["timeout"] = self.timeout(values["timeout"])
        if "headers" in values:
            values["headers"], values["hidden_headers"] = self.headers(values["headers"])
        if "auth" in values:
            if any(name.lower() == "authorization" for name in values.get("headers", ())):
                raise self.fail("auth", "the headers set Authorization too: give one of them")
            values["auth"], values["bearer"] = self.auth(values["auth"])
        if "proxy" in values:
            values["proxy"] = self.proxy(values["proxy"])
        return values

    def integer(self, key: str, value: Any, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"expected an integer >= {minimum}, got {_shown(value)}")
        return value

    def number(self, key: str, value: Any, whole: Any, expected: str = "a number > 0") -> float:
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or value <= 0):
            raise self.fail(key, f"expected {expected}, got {_shown(whole)}")
        return float(value)

    def timeout(self, value: Any) -> tuple[float, float]:
        expected = "a number > 0 or [connect, read]"
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise self.fail("timeout", f"expected {expected}, got {_shown(value)}")
            connect, read = (self.number("timeout", part, value, expected) for part in value)
            return connect, read
        seconds = self.number("timeout", value, value, expected)
        return seconds, seconds

    def text(self, key: str, value: Any, expected: str = "a string") -> tuple[str, bool]:
        """A string, or the variable a ``{env = "NAME"}`` names; True if from there."""
        if isinstance(value, str):
            return value, False
        if isinstance(value, Mapping) and list(value) == ["env"]:
            name = value["env"]
            if not isinstance(name, str) or not name:
                raise self.fail(key, f"env must name an environment variable, got "
                                     f"{_shown(name)}")
            found = self.environ.get(name)
            if found is None:
                raise self.fail(key, f"the environment variable {name} is not set")
            return found, True
        raise self.fail(key, f'expected {expected} or {{env = "NAME"}}, got {_kind(value)}')

    def headers(self, value: Any) -> tuple[dict[str, str], frozenset[str]]:
        if not isinstance(value, Mapping):
            raise self.fail("headers", f"expected a table of header names and values, got "
                                       f"{_kind(value)}")
        headers: dict[str, str] = {}
        hidden = set()
        for name, item in value.items():
            key = f"headers.{_key(str(name))}"
            text, secret = self.text(key, item)
            problem = header_problem(name, text)
            if problem:
                raise self.fail(key, problem)
            same = [other for other in headers if other.lower() == name.lower()]
            if same:
                raise self.fail(key, f"the same header as {same[0]!r}")
            headers[name] = text
            if secret:
                hidden.add(name)
        return headers, frozenset(hidden)

    def auth(self, value: Any) -> tuple[tuple[str, str] | None, str | None]:
        if isinstance(value, Mapping) and list(value) == ["bearer"]:
            token, _ = self.text("auth.bearer", value["bearer"])
            problem = "the token is empty" if not token.strip() else header_problem(
                "Authorization", f"Bearer {token}")
            if problem:
                raise self.fail("auth.bearer", problem)
            return None, token
        if isinstance(value, Mapping) and sorted(value) == ["password", "user"]:
            user, _ = self.text("auth.user", value["user"])
            password, _ = self.text("auth.password", value["password"])
            if ":" in user:
                raise self.fail("auth.user", "basic auth cannot send a user name with ':'")
            if not (is_latin1(user) and is_latin1(password)):
                raise self.fail("auth", "the user or the password has a character outside "
                                        "Latin-1, which basic auth cannot send")
            return (user, password), None
        raise self.fail("auth", 'expected {user = "...", password = "..."} or {bearer = "..."} '
                                f'(each may be {{env = "NAME"}}), got {_kind(value)}')

    def proxy(self, value: Any) -> str | bool:
        if value is False:
            return False
        url, _ = self.text("proxy", value, "a proxy URL, false")
        problem = proxy_url_problem(url)
        if problem:
            raise self.fail("proxy", f"{mask_passwords(repr(url))} {problem}")
        return url
