"""The command's flags as API values: FetchOptions keywords from sizes, ``NAME: VALUE``
pairs and curl's habits (``-d @FILE``, ``--data-urlencode``, ``-F``); the one place where
a value the library refuses becomes a usage error naming its flag.
"""
from __future__ import annotations

import json
import re
import sys
import urllib.parse
from typing import Any

import click

from .help import variable_of
from ..config import FetchOptions
from ..errors import OptionError

__all__ = ["NO_LIMIT", "PairParam", "SecondsParam", "SizeParam", "UserParam", "build_options",
           "keyword_of", "parse_pair", "parse_size", "reads_stdin"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from ``"512"``, ``"512K"``, ``"10M"``, ``"1G"`` or ``"1.5MiB"`` (powers of 1024).

    Raises ``ValueError`` naming the text otherwise.

    Example::

        >>> parse_size("10M"), parse_size("512k"), parse_size("1000")
        (10485760, 524288, 1000)
    """
    found = _SIZE.match(text)
    if not found:
        raise ValueError(f"{text!r} is not a size such as 1000, 512K, 10M or 1G")
    return int(float(found.group(1)) * 1024 ** " kmgt".index(found.group(2).lower() or " "))


def parse_pair(text: str, separator: str) -> tuple[str, str]:
    """Split ``"Name: value"`` or ``"name=value"`` at the first ``separator``; strip the name.

    Raises ``ValueError`` when there is no separator or no name.

    Example::

        >>> parse_pair("Accept: text/html", ":"), parse_pair("page=2", "=")
        (('Accept', 'text/html'), ('page', '2'))
    """
    name, found, value = text.partition(separator)
    if not found or not name.strip():
        example = "'Name: value'" if separator == ":" else f"'NAME{separator}VALUE'"
        raise ValueError(f"{text!r} is not of the form {example}")
    # Only blanks around a header's value go: a line break there is refused, as in a spec.
    return name.strip(), value.strip(" \t") if separator == ":" else value


class PairParam(click.ParamType):
    """``NAME<sep>VALUE`` as a pair; ``split_on`` separates values in a BATCHFETCH_* variable."""

    def __init__(self, separator: str, metavar: str, split_on: str | None = None) -> None:
        self.separator, self.name, self.envvar_list_splitter = separator, metavar, split_on

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        try:
            return value if isinstance(value, tuple) else parse_pair(value, self.separator)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class UserParam(click.ParamType):
    """``USER:PASSWORD`` for basic auth, split at the first colon, nothing stripped."""

    name = "USER:PASSWORD"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, tuple):
            return value
        user, found, password = value.partition(":")
        if not found:  # the value is not echoed: it may be a password given without a user
            self.fail("expected USER:PASSWORD, with a colon (batchfetch does not ask for a "
                      "password: give it after the colon, or use ~/.netrc)", param, ctx)
        return user, password


class _NoLimit:
    """What ``none`` in a flag parses to: the API's None, told apart from a flag not given
    (which click also reports as None)."""

    def __repr__(self) -> str:
        return "none"


NO_LIMIT = _NoLimit()


class SizeParam(click.ParamType):
    """A byte count as :func:`parse_size` reads it, ``auto`` (the default's own value), or
    ``none`` for no cap."""

    name = "SIZE"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if not isinstance(value, str):
            return value
        word = value.strip().lower()
        if word in ("none", "auto"):
            return NO_LIMIT if word == "none" else word
        try:
            return parse_size(value)
        except ValueError:
            self.fail(f"{value!r} is not a size such as 1000, 512K, 10M or 1G, 'auto' or "
                      f"'none'", param, ctx)


class SecondsParam(click.ParamType):
    """Seconds, or ``none`` for no limit (the API's ``None``)."""

    name = "SECONDS"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return NO_LIMIT if value.strip().lower() == "none" else float(value)
        except ValueError:
            self.fail(f"{value!r} is not a number of seconds or 'none'", param, ctx)


_KEYWORDS = frozenset(FetchOptions.field_names())
#: Parameters not named as the keyword they set (the rest are, so BATCHFETCH_<KEYWORD> works).
_KEYWORD_OF_PARAM = {"insecure": "verify", "cacert": "verify", "key": "cert"}


def keyword_of(param: click.Parameter) -> str | None:
    """The FetchOptions keyword a CLI parameter sets, or None for output and general flags."""
    keyword = _KEYWORD_OF_PARAM.get(param.name, param.name)
    return keyword if keyword in _KEYWORDS else None


def build_options(ctx: click.Context | None, flags: dict[str, Any],
                  defaults: dict[str, Any] | None = None) -> FetchOptions:
    """FetchOptions from the parsed flags (None or empty: not given) over ``defaults``.

    The ONE place where an OptionError (a value the library refused) becomes a
    usage error (``click.BadParameter``) naming the flag of ``ctx``'s command.

    Example::

        >>> options = build_options(None, {"data": ("a=1", "b=2"), "retries": 0})
        >>> options.method, options.data
        ('POST', 'a=1&b=2')
    """
    try:
        return FetchOptions(**{**(defaults or {}), **_keywords(flags)})
    except OptionError as exc:
        params = ctx.command.params if ctx is not None else []
        param = next((p for p in params if keyword_of(p) == exc.option), None)
        message = exc.problem or f"must be {exc.expected}, got {exc.shown_value!r}"
        if param is not None and isinstance(param.type, (SecondsParam, SizeParam)):
            message = message.replace(" or None", " or 'none'")  # the flag's spelling
        variable = variable_of(ctx, param) if ctx is not None and param is not None else None
        hint = f"the variable {variable}" if variable else None if param else exc.option
        raise click.BadParameter(message, ctx=ctx, param=param, param_hint=hint)


def _keywords(flags: dict[str, Any]) -> dict[str, Any]:
    """FetchOptions keywords from the flags given; the library owns every default."""
    given = {name: None if value is NO_LIMIT else value for name, value in flags.items()
             if value is not None and value != ()}
    headers = dict(given.pop("headers", ()))
    named = {name.lower() for name in headers}

    def default_header(name: str, value: str) -> None:
        if name.lower() not in named:
            headers[name] = value

    parts = [*(_data_part(value, "'-d' / '--data'", strip=True) for value in given.pop("data", ())),
             *(_data_part(value, "'--data-binary'") for value in given.pop("data_binary", ())),
             *map(_urlencoded_part, given.pop("data_urlencode", ()))]
    if parts:
        given["data"] = _joined(parts)
    if "files" in given:
        if parts:
            raise click.UsageError("-F sends a multipart body, -d a form or raw body: give "
                                   "one of them, as curl asks")
        given["files"] = _form_parts(given["files"])
    if given.pop("head", False):
        if parts or "json" in given or "files" in given or \
                given.get("method", "HEAD").upper() != "HEAD":
            raise click.UsageError("-I sends HEAD requests, which have no body: it does not "
                                   "go with -d, -F, --json or another -X")
        given["method"] = "HEAD"
    if "json" in given:
        if given["json"].startswith("@"):  # curl's --json @FILE (@- standard input)
            given["json"] = _read_body_file(given["json"][1:], "'--json'").decode(
                "utf-8", errors="replace")
        try:
            given["json"] = json.loads(given["json"])
        except ValueError as exc:
            raise click.BadParameter(f"invalid JSON: {exc}", param_hint="'--json'") from None
        default_header("Content-Type", "application/json")
        default_header("Accept", "application/json")
    if "data" in given or "json" in given or "files" in given:
        given.setdefault("method", "POST")
    if headers:
        given["headers"] = headers
    if str(given.get("retry_on", "")).lower() == "none":
        given["retry_on"] = ""
    for name, convert in (("cookies", dict), ("params", list)):
        if name in given:
            given[name] = convert(given[name])
    if "proxies" in given:
        given["proxies"] = {"http": given["proxies"], "https": given["proxies"]}
    if given.pop("insecure", False):
        if "cacert" in given:
            raise click.UsageError("--insecure and --cacert contradict each other: give one")
        given["verify"] = False
    if "cacert" in given:
        given["verify"] = given.pop("cacert")
    if "key" in given:
        if "cert" not in given:
            raise click.UsageError("--key needs --cert")
        given["cert"] = (given["cert"], given.pop("key"))
    return given


def reads_stdin(flags: dict[str, Any]) -> bool:
    """Whether a body flag reads standard input (``-d @-``, ``--data-urlencode name@-``)."""
    return any(value.startswith("@-") and len(value) == 2 or
               name == "data_urlencode" and value.partition("=")[0].endswith("@-")
               for name in ("data", "data_binary", "data_urlencode")
               for value in flags.get(name) or ()) or any(
        value.partition("=")[2].split(";")[0] in ("<-", "@-")
        for value in flags.get("files") or ()) or flags.get("json") == "@-"


def _read_body_file(path: str, hint: str) -> bytes:
    """FILE's bytes for ``@FILE`` (``-`` is standard input, read before the run starts)."""
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as stream:
            return stream.read()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path!r}: {exc.strerror}",
                                 param_hint=hint) from None


def _data_part(value: str, hint: str, strip: bool = False) -> str | bytes:
    """One -d or --data-binary value: the text, or ``@FILE``'s bytes; -d drops their
    carriage returns and newlines, as curl does."""
    if not value.startswith("@"):
        return value
    raw = _read_body_file(value[1:], hint)
    return raw.replace(b"\r", b"").replace(b"\n", b"") if strip else raw


def _urlencoded_part(value: str) -> str:
    """One --data-urlencode value, as curl reads it: ``TEXT`` or ``=TEXT`` (TEXT encoded),
    ``NAME=TEXT`` (NAME as it is, TEXT encoded), ``@FILE`` or ``NAME@FILE`` (FILE's bytes
    encoded); everything but letters, digits and ``-._~`` is percent-encoded.

    Example::

        >>> _urlencoded_part("q=a b&c"), _urlencoded_part("=x=y"), _urlencoded_part("é")
        ('q=a%20b%26c', 'x%3Dy', '%C3%A9')
    """
    if value.startswith("="):
        return urllib.parse.quote(value[1:], safe="")
    name, equals, text = value.partition("=")
    if "@" in name or not equals and "@" in value:
        name, _, path = value.partition("@")
        data = urllib.parse.quote(_read_body_file(path, "'--data-urlencode'"), safe="")
        return f"{name}={data}" if name else data
    if not equals:
        return urllib.parse.quote(value, safe="")
    return f"{name}={urllib.parse.quote(text, safe='')}"


def _form_parts(values: tuple[str, ...]) -> dict[str, Any]:
    """-F values as FetchOptions.files: ``NAME=VALUE`` a text part, ``NAME=@FILE`` a file
    (``;type=TYPE`` and ``;filename=NAME`` after it, as curl reads them), ``NAME=<FILE``
    a text part holding FILE's text.

    Example::

        >>> _form_parts(("note=hi", "doc=@report.pdf;type=application/pdf"))
        {'note': 'hi', 'doc': {'path': 'report.pdf', 'type': 'application/pdf'}}
    """
    parts: dict[str, Any] = {}
    for value in values:
        name, equals, content = value.partition("=")
        if not equals or not name:
            raise click.BadParameter(f"{value!r} is not NAME=VALUE or NAME=@FILE",
                                     param_hint="'-F' / '--form'")
        if name in parts:
            raise click.BadParameter(f"the part {name!r} is given twice",
                                     param_hint="'-F' / '--form'")
        if content.startswith("@"):
            path, *options = content[1:].split(";")
            if path == "-":
                raise click.BadParameter(f"{value!r}: a file part from standard input is not "
                                         f"supported; {name}=<- sends its text",
                                         param_hint="'-F' / '--form'")
            part = {"path": path}
            for option in options:
                key, _, setting = option.partition("=")
                if key.strip() not in ("type", "filename"):
                    raise click.BadParameter(f"{option!r} in {value!r}: batchfetch reads "
                                             f"type= and filename=",
                                             param_hint="'-F' / '--form'")
                part[key.strip()] = setting
            parts[name] = part
        elif content.startswith("<"):
            parts[name] = _read_body_file(content[1:], "'-F' / '--form'")  # bytes as they are
        else:
            parts[name] = content
    return parts


def _joined(parts: list[str | bytes]) -> str | bytes:
    """Body parts joined with '&' as curl joins them; bytes if any part is."""
    if all(isinstance(part, str) for part in parts):
        return "&".join(parts)  # type: ignore[arg-type]
    return b"&".join(part if isinstance(part, bytes) else part.encode("utf-8")
                     for part in parts)
