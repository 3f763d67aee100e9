"""FetchOptions as JSON can carry them (:meth:`~batchfetch.FetchOptions.to_dict` and
``from_dict``): which values travel, how bytes and tuples are marked, and the OptionError
naming an option that cannot travel.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import math
from collections.abc import Collection, Mapping
from typing import Any

from ._checks import status_ranges
from ._host_table import RULE_KEYS
from .errors import OptionError
from .host_rules import HostRules

__all__ = ["BYTES_MARK", "TUPLE_MARK", "options_to_dict", "keywords_from_dict"]

#: ``{"$base64": "aGk="}`` is ``b"hi"``.
BYTES_MARK = "$base64"
#: ``{"$tuple": ["a", 1]}`` is ``("a", 1)`` inside headers, params, data, json, cookies and
#: proxies, where a tuple and a list are both allowed and are not equal.
TUPLE_MARK = "$tuple"
# Tuples by construction: plain lists in the dict, tuples again when read back.
_PAIRS = frozenset({"timeout", "cert", "auth"})
_STATUS_SETS = frozenset({"ok_status", "retry_on"})


def options_to_dict(options: Any) -> dict[str, Any]:
    """Every field of ``options`` (a FetchOptions) as JSON can carry it, in field order."""
    data: dict[str, Any] = {}
    for field in dataclasses.fields(options):
        name, value = field.name, getattr(options, field.name)
        if name in _STATUS_SETS:
            data[name] = status_ranges(value)
        elif name == "hosts":
            data[name] = None if value is None else _rules_to_dict(value)
        elif name == "auth" and value is not None and not isinstance(value, tuple):
            raise _cannot(name, value, "only a (user, password) pair can, not a "
                                       f"{type(value).__name__}")
        elif name in _PAIRS and isinstance(value, tuple):
            data[name] = list(value)
        else:
            data[name] = _encoded(name, value, value)
    return data


def keywords_from_dict(data: Any, names: Collection[str]) -> dict[str, Any]:
    """FetchOptions keywords from what :func:`options_to_dict` gave (or a part of it);
    OptionError for a key that is not in ``names`` or a mark that does not read back."""
    if not isinstance(data, Mapping):
        raise OptionError("options", data, "a mapping of option names to values")
    keywords: dict[str, Any] = {}
    for name, value in data.items():
        if name not in names:
            raise OptionError(str(name), value, "an option", "not an option of FetchOptions")
        if name == "hosts" and value is not None:
            keywords[name] = _rules_from_dict(value)
        elif name in _PAIRS and isinstance(value, list):
            keywords[name] = tuple(value)
        else:
            keywords[name] = _decoded(name, value)
    return keywords


def _cannot(option: str, whole: Any, problem: str) -> OptionError:
    return OptionError(option, whole, "a value JSON can carry", f"cannot travel as JSON: {problem}")


def _encoded(option: str, value: Any, whole: Any, marks: bool = True) -> Any:
    """``value`` with bytes and tuples marked (``marks``), or OptionError naming ``option``
    for anything JSON cannot write: other types, keys that are not strings, nan."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise _cannot(option, whole, f"{value!r} is no JSON number")
    if isinstance(value, bytes) and marks:
        return {BYTES_MARK: base64.b64encode(value).decode("ascii")}
    if isinstance(value, tuple) and marks:
        return {TUPLE_MARK: [_encoded(option, item, whole, marks) for item in value]}
    if isinstance(value, (list, tuple)):
        return [_encoded(option, item, whole, marks) for item in value]
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise _cannot(option, whole, f"the key {key!r} is not a string")
        if marks and len(value) == 1 and next(iter(value)) in (BYTES_MARK, TUPLE_MARK):
            raise _cannot(option, whole, f"a mapping whose one key is {next(iter(value))!r} "
                                         "would read back as bytes or a tuple")
        return {key: _encoded(option, item, whole, marks) for key, item in value.items()}
    raise _cannot(option, whole, f"a {type(value).__name__} has no JSON form")


def _decoded(option: str, value: Any) -> Any:
    """``value`` with the marks of :func:`_encoded` read back."""
    if isinstance(value, list):
        return [_decoded(option, item) for item in value]
    if not isinstance(value, Mapping):
        return value
    if len(value) == 1 and BYTES_MARK in value:
        try:
            return base64.b64decode(value[BYTES_MARK], validate=True)
        except (TypeError, ValueError, binascii.Error):
            raise OptionError(option, value, f'base64 text under "{BYTES_MARK}"') from None
    if len(value) == 1 and TUPLE_MARK in value:
        if not isinstance(value[TUPLE_MARK], list):
            raise OptionError(option, value, f'a list under "{TUPLE_MARK}"')
        return tuple(_decoded(option, item) for item in value[TUPLE_MARK])
    return {key: _decoded(option, item) for key, item in value.items()}


def _rules_to_dict(rules: HostRules) -> dict[str, Any]:
    """``{"source", "patterns", "hidden_headers"}``: each pattern's table as the TOML file
    writes it (secrets read from the environment written out), and the headers that came
    from the environment by pattern (they stay masked where shown)."""
    patterns: dict[str, Any] = {}
    hidden: dict[str, list[str]] = {}
    for rule in rules.rules:
        table: dict[str, Any] = {key: getattr(rule, key) for key in RULE_KEYS
                                 if key not in ("headers", "auth")
                                 and getattr(rule, key) is not None}
        if rule.headers:
            table["headers"] = rule.headers
        if rule.auth is not None:
            table["auth"] = {"user": rule.auth[0], "password": rule.auth[1]}
        elif rule.bearer is not None:
            table["auth"] = {"bearer": rule.bearer}
        patterns[rule.pattern] = _encoded("hosts", table, rules, marks=False)
        if rule.hidden_headers:
            hidden[rule.pattern] = sorted(rule.hidden_headers)
    data = {"source": rules.source, "patterns": patterns, "hidden_headers": hidden}
    try:  # HostRule itself checks nothing: rules made by hand may not read back
        same = _rules_from_dict(data) == rules
    except OptionError as exc:
        raise _cannot("hosts", rules, str(exc)) from None
    if not same:
        raise _cannot("hosts", rules, "the rules do not read back the same (made by hand, "
                                      "not by HostRules.load or from_mapping?)")
    return data


def _rules_from_dict(data: Any) -> HostRules:
    """HostRules from what :func:`_rules_to_dict` gave, checked as a TOML file is."""
    if not isinstance(data, Mapping) or not isinstance(data.get("patterns"), Mapping):
        raise OptionError("hosts", data, 'a mapping with "patterns" (and "source", '
                                         '"hidden_headers")')
    source = data.get("source", "hosts")
    hidden = data.get("hidden_headers") or {}
    if not isinstance(source, str) or not isinstance(hidden, Mapping) or not all(
            isinstance(names, list) and all(isinstance(name, str) for name in names)
            for names in hidden.values()):
        raise OptionError("hosts", data, 'a "source" string and "hidden_headers" mapping '
                                         "patterns to lists of header names")
    rules = HostRules.from_mapping(data["patterns"], source)
    return HostRules(tuple(dataclasses.replace(
        rule, hidden_headers=rule.hidden_headers | frozenset(hidden.get(rule.pattern, ())))
        for rule in rules.rules), source)
