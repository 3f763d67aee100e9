"""The command's inputs, read lazily: URL arguments, files and standard input become
request items in one sequence, each remembered by where it was read.

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
from collections.abc import Iterator
from typing import IO, Any

import click

from .input_text import InputTextError, text_lines
from ..errors import ErrorKind
from ..redaction import mask_line
from ..results import FetchResult
from ..urls import starts_as_url
from ..resume import RecordedRows

__all__ = ["INPUT_FORMATS", "InputSource", "NumberedItems", "detect_format", "open_inputs"]

INPUT_FORMATS = ("auto", "text", "jsonl")
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
#: Error kinds that come from the input line itself rather than from fetching it.
_INPUT_ERRORS = frozenset({ErrorKind.INVALID_URL, ErrorKind.INVALID_REQUEST})


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
#: A name with a path or a port after a host name, or a www., localhost or IPv4 start;
#: ``urls.txt`` is a file name, not a host.
_HOST_LIKE = re.compile(r"^(?:www\.|localhost\b|\d{1,3}(?:\.\d{1,3}){3}\b|"
                        r"[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?::\d+/?|/))")


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
        if starts_as_url(argument):
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
                    hint = (f"; to fetch it, give the URL with its scheme: "
                            f"'http://{argument}' (curl assumes http://) or 'https://...'")
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
        if starts_as_url(text):  # a list of URLs in a file named .jsonl, most likely
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
