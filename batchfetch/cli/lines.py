"""What users hand the CLI, as API values: flags become FetchOptions keywords (sizes,
``NAME: VALUE`` pairs, curl habits), and FILE's lines become request items, read lazily.

Items go to :func:`batchfetch.iter_fetch` as they are read; rows of unusable lines
come back from the library, and :meth:`NumberedItems.annotate` puts the line in their message.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import re
import sys
import urllib.parse
from collections.abc import Iterator
from typing import IO, Any

import click

from .help import variable_of
from .input_text import InputTextError, text_lines
from ..config import FetchOptions
from ..errors import ErrorKind, OptionError
from ..redaction import mask_line
from ..results import FetchResult
from ..resume import RecordedRows

__all__ = ["INPUT_FORMATS", "InputSource", "NumberedItems", "PairParam", "SecondsParam",
           "SizeParam", "UserParam", "build_options", "detect_format", "keyword_of",
           "open_inputs", "parse_pair", "parse_size", "reads_stdin"]

INPUT_FORMATS = ("auto", "text", "jsonl")
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
#: Error kinds that come from the input line itself rather than from fetching it.
_INPUT_ERRORS = frozenset({ErrorKind.INVALID_URL, ErrorKind.INVALID_REQUEST})
#: An argument or a line that starts as a URL does: a scheme and "://".
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
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


@dataclasses.dataclass(frozen=True)
class InputSource:
    """One input the command was given: a ``stream`` (standard input's) or the file at
    ``path`` (opened when its turn comes, closed after: a thousand files do not hold a
    thousand descriptors), read line by line; or, with neither, the one URL ``name``."""

    name: str
    stream: IO[bytes] | None = None
    path: str | None = None

    @property
    def is_url(self) -> bool:
        return self.stream is None and self.path is None

    @property
    def shown(self) -> str:
        """How messages name it (a URL's password masked)."""
        if self.name in ("-", "<stdin>"):
            return "standard input"
        return mask_line(self.name) if self.is_url else self.name

    @contextlib.contextmanager
    def opened(self) -> Iterator[IO[bytes]]:
        """Its stream: the file opened (and closed after), or the stream as it is."""
        if self.path is None:
            yield self.stream
            return
        try:
            stream = open(self.path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:  # there when the run started, gone now
            raise InputTextError(f"cannot read {self.path}: {exc.strerror}") from None
        with stream:
            yield stream


class NumberedItems:
    """Request items parsed lazily from the command's inputs, each remembered by where it
    was read (``line 3 of urls.txt``, ``argument 2``), indexed in one sequence across them.

    ``stream`` is one stream (named ``name``) or a list of :class:`InputSource`. Blank
    lines and lines starting with ``#`` are skipped in both formats; ``input_format``
    "auto" picks each file's own. Only the places of items whose rows have not come back
    are kept, so memory stays flat on endless input.

    With ``recorded`` (``--resume``), which :func:`batchfetch.iter_fetch` resumes, each input
    is checked against its row here too, so that another input's file fails
    (:class:`~batchfetch.resume.ResumeError`) naming the line, and the places of the inputs
    it skips are not kept.

    Example::

        >>> import io
        >>> items = NumberedItems(io.BytesIO(b"# urls\\nhttp://127.0.0.1/a\\nnot a url\\n"),
        ...                       name="urls.txt")
        >>> list(items)
        [(0, 'http://127.0.0.1/a'), (1, 'not a url')]
        >>> items.annotate(FetchResult(1, "not a url", error="invalid_url", message="no scheme")
        ...                ).message
        'line 3 of urls.txt: no scheme'
    """

    def __init__(self, stream: IO[bytes] | list[InputSource], input_format: str = "auto",
                 name: str = "-", recorded: RecordedRows | None = None) -> None:
        self.format = input_format
        self._sources = stream if isinstance(stream, list) else [InputSource(name, stream)]
        self._recorded = recorded
        #: input index of an item handed to the library -> (where it was read, its problem)
        self._pending: dict[int, tuple[str, str | None]] = {}

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        """``(input index, item)`` pairs, for ``iter_fetch(..., indexed=True)``."""
        recorded = self._recorded
        for index, where, item, problem in self._parsed():
            if recorded is None or not recorded.skips(index, item, where):
                self._pending[index] = (where, problem)
            yield index, item

    def _parsed(self) -> Iterator[tuple[int, str, Any, str | None]]:
        """``(index, where it was read, item, its problem)`` of each item; at the end, with
        recorded rows, checks that the inputs have as many items as they need."""
        count = 0
        for position, source in enumerate(self._sources, start=1):
            if source.is_url:
                count += 1
                yield count - 1, f"argument {position}", source.name, None
                continue
            for number, item, problem in self._parsed_lines(source):
                count += 1
                yield count - 1, f"line {number} of {source.shown}", item, problem
        if self._recorded is not None:
            named = self._sources[0].shown if len(self._sources) == 1 else "the inputs"
            self._recorded.check_count(count, named)

    def _parsed_lines(self, source: InputSource) -> Iterator[tuple[int, Any, str | None]]:
        with source.opened() as stream:
            lines = _content_lines(stream, source.name)
            first = next(lines, None)
            if first is None:
                return
            input_format = self.format
            if input_format == "auto":
                input_format = detect_format(source.name, first[1])
            parse = _parse_json if input_format == "jsonl" else _parse_url
            for number, text in itertools.chain([first], lines):
                yield (number, *parse(text))

    def scan(self) -> int | None:
        """Count the items of inputs that are files ahead and rewind them, so a line that is
        not text (InputTextError) fails before anything is fetched; when resuming, check
        them against the recorded rows too, so another input's file fails as early. None
        when an input is a pipe or a terminal, which cannot be read twice."""
        starts = []
        try:
            for source in self._sources:
                if source.stream is not None:
                    if not source.stream.seekable():
                        return None
                    starts.append((source.stream, source.stream.tell()))
        except (AttributeError, OSError, ValueError):
            return None
        try:
            if self._recorded is None:
                return sum(1 if source.is_url else self._count(source)
                           for source in self._sources)
            count = 0
            for count, (index, where, item, _) in enumerate(self._parsed(), start=1):
                self._recorded.skips(index, item, where)
            return count
        finally:
            for stream, start in starts:
                stream.seek(start)

    @staticmethod
    def _count(source: InputSource) -> int:
        with source.opened() as stream:
            return sum(1 for _ in _content_lines(stream, source.name))

    @property
    def pending(self) -> int:
        """Items read whose rows have not come back (in flight or waiting)."""
        return len(self._pending)

    def annotate(self, row: FetchResult) -> FetchResult:
        """Return ``row`` with where it was read before the message if the item itself
        was unusable (``line 3 of urls.txt: ...``)."""
        where, problem = self._pending.pop(row.index, (None, None))
        # attempts == 0: the line itself was refused (not a redirect it led to, say).
        if where is not None and row.error in _INPUT_ERRORS and not row.attempts:
            return dataclasses.replace(row, message=f"{where}: {problem or row.message}")
        return row


#: A file name that is more likely a URL given without its scheme (example.com/page).
_HOST_LIKE = re.compile(r"^(?:www\.|localhost\b|\d{1,3}(?:\.\d{1,3}){3}\b|"
                        r"[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?::\d+)?(?:/|$))")


def open_inputs(ctx: click.Context, arguments: tuple[str, ...]) -> list[InputSource]:
    """The command's INPUT arguments as sources, in order: one with a scheme and ``://``
    is a URL, ``-`` standard input (also when there is no argument), anything else a file
    (opened here to see that it can be, and again when its turn comes). A file that cannot
    be opened is a usage error; a name that looks like a URL without its scheme says how
    to fetch it.

    Example::

        >>> with click.Context(click.Command("batchfetch")) as ctx:
        ...     [source.shown for source in open_inputs(ctx, ("http://127.0.0.1/a", "-"))]
        ['http://127.0.0.1/a', 'standard input']
    """
    sources: list[InputSource] = []
    for argument in arguments or ("-",):
        if _SCHEME.match(argument):
            sources.append(InputSource(argument))
        elif argument == "-":
            if any(source.name == "-" for source in sources):
                raise click.UsageError("'-' (standard input) is given twice")
            sources.append(InputSource("-", click.open_file("-", "rb")))
        else:
            try:
                open(argument, "rb").close()
            except OSError as exc:
                hint = ""
                if _HOST_LIKE.match(argument) and not os.path.exists(argument):
                    hint = f"; to fetch it, give the URL with its scheme: 'https://{argument}'"
                raise click.BadParameter(f"cannot read {mask_line(argument)!r}: "
                                         f"{exc.strerror}{hint}", ctx=ctx,
                                         param_hint="INPUT") from None
            sources.append(InputSource(argument, path=argument))
    return sources


def _parse_url(text: str) -> tuple[Any, str | None]:
    return text, None


def _parse_json(text: str) -> tuple[Any, str | None]:
    try:
        return json.loads(text), None
    except ValueError as exc:
        if _SCHEME.match(text):  # a list of URLs in a file named .jsonl, most likely
            return _BadLine(text), ("a plain URL where JSON Lines specs were expected: give "
                                    "--input-format text to read the file as URLs")
        return _BadLine(text), f"invalid JSON: {exc}"


def _content_lines(stream: IO[bytes], name: str) -> Iterator[tuple[int, str]]:
    """``(line number, stripped text)`` of each line that is neither blank nor a comment;
    :class:`~batchfetch.cli.input_text.InputTextError` at a line that is not text."""
    for number, line in text_lines(stream, name):
        text = line.strip()
        if text and not text.startswith("#"):
            yield number, text
