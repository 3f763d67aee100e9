"""What users hand the CLI, as API values: flags become FetchOptions keywords (sizes,
``NAME: VALUE`` pairs, curl habits), and FILE's lines become request items, read lazily.

Items go to :func:`batchfetch.iter_fetch` as they are read; rows of unusable lines
come back from the library, and :meth:`NumberedItems.annotate` puts the line in their message.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import re
import sys
from collections.abc import Iterator
from typing import IO, Any

import click

from .input_text import text_lines
from ..config import FetchOptions
from ..errors import ErrorKind, OptionError
from ..results import FetchResult
from ..resume import RecordedRows

__all__ = ["INPUT_FORMATS", "NumberedItems", "PairParam", "SecondsParam", "SizeParam",
           "UserParam", "build_options", "detect_format", "keyword_of", "parse_pair",
           "parse_size"]

INPUT_FORMATS = ("auto", "text", "jsonl")
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
#: Error kinds that come from the input line itself rather than from fetching it.
_INPUT_ERRORS = frozenset({ErrorKind.INVALID_URL, ErrorKind.INVALID_REQUEST})
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


# -- flags to FetchOptions keywords ---------------------------------------------------

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
        raise click.BadParameter(message, ctx=ctx, param=param,
                                 param_hint=None if param else exc.option)


def _keywords(flags: dict[str, Any]) -> dict[str, Any]:
    """FetchOptions keywords from the flags given; the library owns every default."""
    given = {name: None if value is NO_LIMIT else value for name, value in flags.items()
             if value is not None and value != ()}
    headers = dict(given.pop("headers", ()))
    named = {name.lower() for name in headers}

    def default_header(name: str, value: str) -> None:
        if name.lower() not in named:
            headers[name] = value

    if "data" in given:
        given["data"] = _joined_data(given["data"])
    if "json" in given:
        try:
            given["json"] = json.loads(given["json"])
        except ValueError as exc:
            raise click.BadParameter(f"invalid JSON: {exc}", param_hint="'--json'") from None
        default_header("Content-Type", "application/json")
        default_header("Accept", "application/json")
    if "data" in given or "json" in given:
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


def _joined_data(values: tuple[str, ...]) -> str | bytes:
    """-d values joined with '&' as curl joins them; ``@FILE`` is FILE's bytes and ``@-``
    standard input's, without carriage returns and newlines (curl strips those for -d)."""
    parts: list[str | bytes] = []
    for value in values:
        if not value.startswith("@"):
            parts.append(value)
            continue
        path = value[1:]
        try:
            if path == "-":
                raw = sys.stdin.buffer.read()  # before the run: nothing else waits yet
            else:
                with open(path, "rb") as stream:
                    raw = stream.read()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {path!r}: {exc.strerror}",
                                     param_hint="'-d' / '--data'") from None
        parts.append(raw.replace(b"\r", b"").replace(b"\n", b""))
    if all(isinstance(part, str) for part in parts):
        return "&".join(parts)  # type: ignore[arg-type]
    return b"&".join(part if isinstance(part, bytes) else part.encode("utf-8")
                     for part in parts)


# -- FILE's lines ----------------------------------------------------------------------


def detect_format(name: str, first_line: str) -> str:
    """``"jsonl"`` for a ``.jsonl``/``.ndjson`` name or a first line that is an object, else text.

    Example::

        >>> detect_format("-", '{"url": "http://127.0.0.1/"}'), detect_format("urls.txt", "x")
        ('jsonl', 'text')
    """
    if name.lower().endswith(_JSONL_SUFFIXES):
        return "jsonl"
    return "jsonl" if first_line.startswith("{") else "text"


class _BadLine:
    """A line that is not JSON. The library rejects it (``invalid_request``) and shows its repr,
    the line itself, in the url column; :meth:`NumberedItems.annotate` supplies the message."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class NumberedItems:
    """Request items parsed lazily from the lines of ``stream``, each remembered by its line.

    Blank lines and lines starting with ``#`` are skipped in both formats. Only the lines of
    items whose rows have not come back are kept, so memory stays flat on endless input.

    With ``recorded`` (``--resume``), which :func:`batchfetch.iter_fetch` resumes, each input
    is checked against its row here too, so that another input's file fails
    (:class:`~batchfetch.resume.ResumeError`) naming the line, and the lines of the inputs
    it skips are not kept.

    Example::

        >>> import io
        >>> items = NumberedItems(io.BytesIO(b"# urls\\nhttp://127.0.0.1/a\\nnot a url\\n"))
        >>> list(items)
        [(0, 'http://127.0.0.1/a'), (1, 'not a url')]
        >>> items.annotate(FetchResult(1, "not a url", error="invalid_url", message="no scheme")
        ...                ).message
        'line 3: no scheme'
    """

    def __init__(self, stream: IO[bytes], input_format: str = "auto", name: str = "-",
                 recorded: RecordedRows | None = None) -> None:
        self.format = input_format
        self._stream = stream
        self._name = name
        self._recorded = recorded
        #: input index of an item handed to the library -> (its line, the line's problem)
        self._pending: dict[int, tuple[int, str | None]] = {}

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        """``(input index, item)`` pairs, for ``iter_fetch(..., indexed=True)``."""
        recorded = self._recorded
        for index, number, item, problem in self._parsed():
            if recorded is None or not recorded.skips(index, item,
                                                      f"line {number} of {self._name}"):
                self._pending[index] = (number, problem)
            yield index, item

    def _parsed(self) -> Iterator[tuple[int, int, Any, str | None]]:
        """``(index, line number, item, the line's problem)`` of each item; at the end, with
        recorded rows, checks that the input has as many items as they need."""
        lines = _content_lines(self._stream, self._name)
        count = 0
        first = next(lines, None)
        if first is not None:
            if self.format == "auto":
                self.format = detect_format(self._name, first[1])
            parse = _parse_json if self.format == "jsonl" else _parse_url
            for count, (number, text) in enumerate(itertools.chain([first], lines), start=1):
                yield (count - 1, number, *parse(text))
        if self._recorded is not None:
            self._recorded.check_count(count, self._name)

    def scan(self) -> int | None:
        """Count the items of a seekable stream (a file) ahead and rewind, so a line that is
        not text (InputTextError) fails before anything is fetched; when resuming, check
        them against the recorded rows too, so another input's file fails as early. None
        for a pipe or a terminal, which cannot be read twice."""
        try:
            if not self._stream.seekable():
                return None
            start = self._stream.tell()
        except (AttributeError, OSError, ValueError):
            return None
        try:
            if self._recorded is None:
                return sum(1 for _ in _content_lines(self._stream, self._name))
            count = 0
            for count, (index, number, item, _) in enumerate(self._parsed(), start=1):
                self._recorded.skips(index, item, f"line {number} of {self._name}")
            return count
        finally:
            self._stream.seek(start)

    @property
    def pending(self) -> int:
        """Items read whose rows have not come back (in flight or waiting)."""
        return len(self._pending)

    def annotate(self, row: FetchResult) -> FetchResult:
        """Return ``row`` with ``"line N: "`` before the message if its line was unusable."""
        number, problem = self._pending.pop(row.index, (None, None))
        # attempts == 0: the line itself was refused (not a redirect it led to, say).
        if number is not None and row.error in _INPUT_ERRORS and not row.attempts:
            return dataclasses.replace(row, message=f"line {number}: {problem or row.message}")
        return row


def _parse_url(text: str) -> tuple[Any, str | None]:
    return text, None


def _parse_json(text: str) -> tuple[Any, str | None]:
    try:
        return json.loads(text), None
    except ValueError as exc:
        return _BadLine(text), f"invalid JSON: {exc}"


def _content_lines(stream: IO[bytes], name: str) -> Iterator[tuple[int, str]]:
    """``(line number, stripped text)`` of each line that is neither blank nor a comment;
    :class:`~batchfetch.cli.input_text.InputTextError` at a line that is not text."""
    for number, line in text_lines(stream, name):
        text = line.strip()
        if text and not text.startswith("#"):
            yield number, text
