"""The checks behind the option objects: numbers, integers, status sets, header mappings,
proxy URLs and paths, each failure an :class:`~batchfetch.errors.OptionError` naming the
option and the value.
"""
from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import OptionError
from .headers import first_cookie_problem, first_header_problem
from .redaction import mask_passwords
from .urls import proxy_url_problem

__all__ = ["broker_problem", "existing_path", "integer", "number", "parse_status_set",
           "proxy_problem", "status_ranges", "string_mapping"]

_STATUS_RANGE = re.compile(r"^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$")


def number(option: str, value: Any, *, minimum: float = 0.0, allow_none: bool = False,
           strictly_positive: bool = True) -> float | None:
    """``value`` as a finite float above ``minimum`` (or at it, unless ``strictly_positive``)."""
    if value is None and allow_none:
        return None
    bound = f"> {minimum:g}" if strictly_positive else f">= {minimum:g}"
    expected = f"a number {bound}" + (" or None" if allow_none else "")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OptionError(option, value, expected)
    if value != value or value == float("inf"):
        raise OptionError(option, value, expected)
    if value < minimum or (strictly_positive and value == minimum):
        raise OptionError(option, value, expected)
    return float(value)


def integer(option: str, value: Any, *, minimum: int, allow_none: bool = False) -> int | None:
    """``value`` if it is an int (not a bool) of at least ``minimum``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        expected = f"an integer >= {minimum}" + (" or None" if allow_none else "")
        raise OptionError(option, value, expected)
    return value


def parse_status_set(value: Any, option: str = "ok_status") -> frozenset[int]:
    """Turn ``"200-299,404"``, ``404``, ``range(200, 300)`` or ``[200, 201]`` into a set.

    Example::

        >>> sorted(parse_status_set("200-202,404"))
        [200, 201, 202, 404]
    """
    expected = 'statuses such as "200-299,404", a status, or an iterable of statuses'
    if isinstance(value, bool):
        raise OptionError(option, value, expected)
    if isinstance(value, int):
        parts: Iterable[Any] = [value]
    elif isinstance(value, str):
        parts = [part for part in value.split(",") if part.strip()]
        if not parts:
            raise OptionError(option, value, expected)
    elif isinstance(value, Iterable):
        parts = list(value)
    else:
        raise OptionError(option, value, expected)
    statuses: set[int] = set()
    for part in parts:
        if isinstance(part, range):
            statuses.update(part)
            continue
        if isinstance(part, int) and not isinstance(part, bool):
            low = high = part
        elif isinstance(part, str) and _STATUS_RANGE.match(part):
            found = _STATUS_RANGE.match(part)
            low = int(found.group(1))
            high = int(found.group(2) or low)
        else:
            raise OptionError(option, value, expected)
        if not 100 <= low <= high <= 599:
            raise OptionError(option, value, "statuses between 100 and 599, low-high ranges")
        statuses.update(range(low, high + 1))
    return frozenset(statuses)


def status_ranges(statuses: Iterable[int]) -> list[str]:
    """``statuses`` as the fewest ``"low-high"`` ranges, in order: what
    :func:`parse_status_set` reads back.

    Example::

        >>> status_ranges({429, 500, 502, 503, 504})
        ['429', '500', '502-504']
    """
    ranges: list[list[int]] = []
    for status in sorted(statuses):
        if ranges and status == ranges[-1][1] + 1:
            ranges[-1][1] = status
        else:
            ranges.append([status, status])
    return [str(low) if low == high else f"{low}-{high}" for low, high in ranges]


def string_mapping(option: str, value: Any) -> dict[str, str]:
    """A copy of ``value`` (None: empty), a mapping of names to text every request can
    carry as ``option`` (headers, cookies, proxies)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
            isinstance(key, str) and isinstance(item, (str, bytes)) for key, item in value.items()):
        raise OptionError(option, value, "a mapping of str to str")
    problem = None
    if option == "headers":
        problem = first_header_problem(value)
    elif option == "cookies":
        problem = first_cookie_problem(value)
    if problem:
        raise OptionError(option, value, "values every request can carry", problem)
    return dict(value)


def proxy_problem(proxies: Mapping[str, str]) -> str | None:
    """What is wrong with a proxy URL, named: else every row fails as invalid_url, each
    message blaming its own URL."""
    for scheme, url in proxies.items():
        if scheme == "no_proxy" or not url:
            continue
        problem = proxy_url_problem(url)
        if problem:
            return f"proxy {mask_passwords(url)!r} for {scheme} {problem}"
    return None


def existing_path(option: str, value: Any) -> str:
    """``value`` as a str, if it is the path of an existing file or directory."""
    if not isinstance(value, (str, os.PathLike)) or not os.path.exists(value):
        raise OptionError(option, value, "the path of an existing file or directory")
    return os.fspath(value)


def broker_problem(url: Any) -> str | None:
    """What is wrong with ``url`` as a broker, or None: a ``redis://`` or ``rediss://``
    URL (the leases, rows and cancel key live in Redis too)."""
    if not isinstance(url, str) or not url:
        return "the broker is a URL such as redis://HOST:6379/0"
    if url.split("://", 1)[0] not in ("redis", "rediss"):
        return (f"{mask_passwords(url)} is not a Redis URL: the distributed engine keeps its "
                "leases, rows and cancel key in Redis, so the broker is redis://HOST:PORT/DB "
                "or rediss:// (TLS)")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"{mask_passwords(url)} is not a valid URL: {exc}"
    if re.search(r"(^|&)password=", parts.query):
        return (f"{mask_passwords(url)}: give the password in the URL's user info, "
                "redis://:PASSWORD@HOST:6379/0 (Celery cannot take ?password=)")
    if not re.fullmatch(r"/?|/\d+", parts.path):
        return (f"{mask_passwords(url)}: the path is Redis's database number "
                f"(redis://HOST:6379/0), not {parts.path!r}")
    return None
