"""The command line's input as lines of text: UTF-8, or UTF-16/UTF-32 that starts with a
byte order mark; read from pipes and terminals without holding up other greenlets; and
refused, naming the line, when it is not text (a NUL byte, bytes that are not UTF-8).

Decoding with replacement characters, as before, turned a UTF-16 file into rows of
``invalid_url`` that look valid on a terminal, and a binary file into garbage "URLs".
"""
from __future__ import annotations

import codecs
import itertools
import os
import stat
from collections.abc import Iterable, Iterator
from typing import IO, Any

import gevent.socket

from ..errors import BatchFetchError

__all__ = ["InputTextError", "text_lines"]

_READ_SIZE = 64 * 1024
# UTF-32's marks first: UTF-32-LE's starts with UTF-16-LE's.
_BYTE_ORDER_MARKS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
                     (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                     (codecs.BOM_UTF16_BE, "utf-16-be"))
_HOW = ("batchfetch reads UTF-8 text, or UTF-16/UTF-32 that starts with a byte order mark: "
        "convert it first, e.g.")


class InputTextError(BatchFetchError, ValueError):
    """The input is not text batchfetch can read; the message names the line and says what
    was found there."""


def text_lines(stream: IO[bytes], name: str = "-") -> Iterator[tuple[int, str]]:
    """``(line number, line without its newline)`` for every line of ``stream``.

    Raises :class:`InputTextError` at the first line that is not text.

    Example::

        >>> import io
        >>> list(text_lines(io.BytesIO("http://a/\\nhttp://b/".encode("utf-16"))))
        [(1, 'http://a/'), (2, 'http://b/')]
    """
    chunks = _chunks(stream)
    head = b""
    for chunk in chunks:
        head += chunk
        if not any(mark.startswith(head) and len(head) < len(mark)
                   for mark, _ in _BYTE_ORDER_MARKS):
            break  # enough to tell (an interactive first line is not held back)
    encoding, mark = next(((encoding, mark) for mark, encoding in _BYTE_ORDER_MARKS
                           if head.startswith(mark)), ("utf-8", b""))
    rest = itertools.chain([head[len(mark):]], chunks)
    where = "standard input" if name in ("-", "<stdin>") else name
    if encoding == "utf-8":
        return _utf8_lines(rest, where, name)
    return _decoded_lines(rest, encoding, where, name)


def _utf8_lines(chunks: Iterable[bytes], where: str, name: str) -> Iterator[tuple[int, str]]:
    lines = _Lines(b"\n")
    for chunk in itertools.chain(chunks, [None]):
        for number, raw in lines.feed(chunk):
            if b"\0" in raw:
                raise InputTextError(_nul_message(number, where, name))
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                iconv = f"iconv -f LATIN1 -t UTF-8 {_shown(name)}"
                raise InputTextError(f"line {number} of {where} is not UTF-8: byte "
                                     f"0x{raw[exc.start]:02x} at byte {exc.start + 1} of the "
                                     f"line. {_HOW} {iconv}") from None
        if chunk is not None and b"\0" in chunk.rpartition(b"\n")[2]:
            # At once, not at the line's end: a binary file may have none for a long while.
            raise InputTextError(_nul_message(lines.number + 1, where, name))


def _decoded_lines(chunks: Iterable[bytes], encoding: str, where: str,
                   name: str) -> Iterator[tuple[int, str]]:
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    lines = _Lines("\n")
    for chunk in itertools.chain(chunks, [None]):
        pending = decoder.getstate()[0]
        try:
            text = decoder.decode(chunk or b"", final=chunk is None)
        except UnicodeDecodeError as exc:  # its start counts from the decoder's pending bytes
            good = (pending + (chunk or b""))[:exc.start].decode(encoding)
            number = lines.number + 1 + good.count("\n")
            iconv_name = encoding.upper().replace("-LE", "LE").replace("-BE", "BE")
            raise InputTextError(
                f"line {number} of {where} is not valid {iconv_name}, though it starts with "
                f"that byte order mark. {_HOW} iconv -f {iconv_name} -t UTF-8 "
                f"{_shown(name)}") from None
        for number, line in itertools.chain(lines.feed(text),
                                            lines.feed(None) if chunk is None else ()):
            if "\0" in line:
                raise InputTextError(_nul_message(number, where, name))
            yield number, line


class _Lines:
    """Complete lines out of pieces (bytes or str) as they arrive, numbered from 1; the
    last line even without its end. A long line costs its length, not its length squared."""

    def __init__(self, separator) -> None:
        self.separator = separator
        self.number = 0  # lines given out so far
        self._held: list = []  # pieces of the line being read

    def feed(self, piece) -> Iterator[tuple[int, Any]]:
        """The lines ``piece`` completes; None ends the input."""
        empty = self.separator[:0]
        if piece is None:
            rest, self._held = empty.join(self._held), []
            if rest:
                self.number += 1
                yield self.number, rest
            return
        parts = piece.split(self.separator)
        if len(parts) == 1:
            if piece:
                self._held.append(piece)
            return
        self._held.append(parts[0])
        first, self._held = empty.join(self._held), []
        for line in [first, *parts[1:-1]]:
            self.number += 1
            yield self.number, line
        if parts[-1]:
            self._held.append(parts[-1])


def _nul_message(number: int, where: str, name: str) -> str:
    return (f"line {number} of {where} holds a NUL byte: not text (UTF-16 without a byte "
            f"order mark?). {_HOW} iconv -f UTF-16LE -t UTF-8 {_shown(name)}")


def _shown(name: str) -> str:
    return "FILE" if name in ("-", "<stdin>") else name


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    """The bytes of ``stream`` as they arrive.

    A blocking read of a pipe or terminal would freeze every greenlet, fetches
    included, until the producer writes; waiting with gevent first lets them run.
    """
    fd = _waitable_fd(stream)
    while True:
        if fd is None:  # a regular file or an in-memory stream never waits on a producer
            chunk = stream.read(_READ_SIZE)
        else:
            gevent.socket.wait_read(fd)
            chunk = os.read(fd, _READ_SIZE)  # returns at once: data or end of file is ready
        if not chunk:
            return
        yield chunk


def _waitable_fd(stream: IO[bytes]) -> int | None:
    """The descriptor of a pipe, socket or terminal, which gevent can wait on; else None."""
    try:
        fd = stream.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd):
        return fd
    return None
