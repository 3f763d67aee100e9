"""Where the command's rows go, and what the command hears meanwhile: the format and
the -o FILE, checked before anything is written; a file or standard output, written so
that a full disk, a reader that goes away and Ctrl-C or SIGTERM are each noticed at once,
whatever the output is doing.

On a pipe or socket, standard output is written by :class:`PipeText`: it waits for room
with gevent instead of blocking the process in ``write`` (a process blocked there runs no
greenlet: a Ctrl-C could not reach the main one), and writes a row of up to ``PIPE_BUF``
bytes in one ``write``, which a pipe takes whole or not at all. The file
description itself is left as it is (no ``O_NONBLOCK``: a pipe's description is shared
with whoever else writes to it, the shell's other commands included).
"""
from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

import click
import gevent
import gevent.socket

from ..errors import OutputError
from ..writers import format_for_path
from .help import listed, output_suffixes

__all__ = ["OutputError", "PipeText", "GuardedText", "open_rows_output", "check_writable",
           "check_output_file", "format_for", "stdout_is_a_terminal",
           "interrupts_as_exceptions", "silence_stdout", "EXIT_INTERRUPTED"]

EXIT_INTERRUPTED = 130
#: Bytes a pipe takes in one write whole or not at all (POSIX's minimum for PIPE_BUF; 4096
#: on Linux): a row up to this size never reaches the reader cut in two.
_ATOMIC = getattr(select, "PIPE_BUF", 512)


# The streams below are plain classes, not io.TextIOBase: its __del__ would close, and so
# flush, a stream the command gave up on (a full pipe, an -o FILE it must leave untouched).


class GuardedText:
    """A text stream whose OS errors (but a closed pipe's) become :class:`OutputError`."""

    def __init__(self, stream: Any, name: str, close: bool = True) -> None:
        self.stream, self.name, self._close = stream, name, close

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except BrokenPipeError:
            raise  # the reader went away: the command stops quietly (exit 141)
        except OSError as exc:
            raise OutputError(self.name, exc) from exc

    def write(self, text: str) -> int:
        with self._guard():
            return self.stream.write(text)

    def flush(self) -> None:
        with self._guard():
            self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:  # a terminal's: the table asks for its width
        return self.stream.fileno()

    @property
    def started(self) -> bool:
        """Whether anything reached the file yet (an -o FILE opens with the first row)."""
        return getattr(self.stream, "started", True)

    def close(self) -> None:
        if self._close:
            with self._guard():
                self.stream.close()

    def discard(self) -> None:
        """Close without writing what is buffered (the disk refused it already)."""
        if self._close:
            with contextlib.suppress(OSError):
                getattr(self.stream, "discard", self.stream.close)()


class _StillWaiting(Exception):
    """A wait for the reader went on past its interval (PipeText.while_waiting)."""


class PipeText:
    """Standard output on a pipe or socket: rows go out whole, and waiting for the reader
    lets every greenlet (the signal handling included) run meanwhile.

    ``write`` only collects text; ``flush`` (the writers flush after every row) writes it.
    A write the reader cannot take yet waits with gevent; a closed reader raises
    BrokenPipeError; any other OS error :class:`OutputError`.
    """

    def __init__(self, fd: int, encoding: str = "utf-8", errors: str = "strict",
                 is_pipe: bool = True) -> None:
        self.fd, self._encoding, self._errors = fd, encoding, errors
        #: A pipe, not a socket: only a pipe's write end tells when its reader is gone.
        self.is_pipe = is_pipe
        self._texts: list[str] = []
        self._unsent = b""  # encoded, not yet taken by the pipe (an interrupted flush)
        #: Called once, the next time a write has to wait for the reader (then cleared).
        self.on_wait: Callable[[], None] | None = None
        #: ``(seconds, callback)``: called every so many seconds while a write waits.
        self.while_waiting: tuple[float, Callable[[], None]] | None = None

    def write(self, text: str) -> int:
        self._texts.append(text)
        return len(text)

    def flush(self) -> None:
        if self._texts:
            self._unsent += "".join(self._texts).encode(self._encoding, self._errors)
            self._texts.clear()
        # At most PIPE_BUF bytes per write: after poll says there is room, a pipe takes that
        # much without blocking (a larger write on a blocking pipe waits for the reader).
        view, done = memoryview(self._unsent), 0
        try:
            while done < len(view):
                self._wait_for_room()
                try:
                    done += os.write(self.fd, view[done:done + _ATOMIC])
                except BlockingIOError:
                    continue  # another writer took the room (a shared pipe): wait again
                except BrokenPipeError:
                    raise
                except OSError as exc:
                    raise OutputError("standard output", exc) from exc
        finally:  # an interrupted flush keeps what the pipe has not taken, for close()
            view.release()
            self._unsent = self._unsent[done:]

    def _wait_for_room(self) -> None:
        # select with no timeout answers at once (select is not patched, so no hub round
        # trip) for the usual case of a pipe with room; gevent waits otherwise. A closed
        # reader counts as room: the write then fails with EPIPE.
        if not select.select([], [self.fd], [], 0)[1]:
            if self.on_wait is not None:
                notice, self.on_wait = self.on_wait, None
                notice()
            while self.while_waiting is not None:
                interval, callback = self.while_waiting
                try:
                    # the class, not one instance: each raise would lengthen its traceback
                    gevent.socket.wait_write(self.fd, timeout=interval,
                                             timeout_exc=_StillWaiting)
                    return
                except _StillWaiting:
                    callback()
            gevent.socket.wait_write(self.fd)

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.fd

    def lines_waiting(self) -> int:
        """Lines (rows) written here that the pipe has not taken yet, whole or in part."""
        return self._unsent.count(b"\n") + sum(text.count("\n") for text in self._texts)

    def close(self) -> None:
        self.flush()  # the file descriptor is standard output's: it stays open

    def watch_reader(self, greenlet: Any) -> gevent.Greenlet | None:
        """A greenlet that raises BrokenPipeError in ``greenlet`` as soon as the pipe's
        reader goes away, though no row is being written (a run whose last URL hangs would
        otherwise notice only when that row completes); None on a socket.

        A pipe's write end never becomes readable; the poll reports an error on it when
        the last reader closes, which gevent's loop delivers as readiness to read. A
        socket is readable when its peer sends or half-closes, which is not going away.
        """
        if not self.is_pipe:
            return None

        def watch() -> None:
            gevent.socket.wait_read(self.fd)
            gevent.kill(greenlet, BrokenPipeError("the reader of standard output went away"))

        return gevent.spawn(watch)


def _file_type(stream: IO[str]) -> tuple[int | None, int]:
    """The descriptor of ``stream`` and its st_mode; (None, 0) when it has none."""
    try:
        fd = stream.fileno()
        return fd, os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None, 0


class _OpenedOnFirstFlush:
    """FILE, opened (and emptied) only when the first row is flushed: a run that stops
    before its first row (input that is not text) leaves an existing FILE as it was.
    What is written before (a CSV header) waits in memory."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._held: list[str] = []
        self._file: IO[str] | None = None

    def write(self, text: str) -> int:
        if self._file is None:
            self._held.append(text)
            return len(text)
        return self._file.write(text)

    def flush(self) -> None:
        if self._file is None:
            self._file = open(self.path, "w", encoding="utf-8", newline="")
            self._file.write("".join(self._held))
            self._held.clear()
        self._file.flush()

    def isatty(self) -> bool:
        return False

    @property
    def started(self) -> bool:
        return self._file is not None

    def close(self) -> None:
        self.flush()  # a run of no rows still leaves FILE (with a CSV header)
        self._file.close()

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()


def check_writable(path: str) -> None:
    """Raise OSError now if FILE cannot be written, without emptying or leaving it."""
    existed = os.path.exists(path)
    os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666))
    if not existed:
        os.unlink(path)


def open_rows_output(path: str | None) -> GuardedText | PipeText:
    """The stream rows are written to: FILE (``-o``; created or emptied with the first
    row), or standard output (None or ``-``).

    Raises :class:`OutputError` when standard output is closed.
    """
    if path not in (None, "-"):
        return GuardedText(_OpenedOnFirstFlush(path), path)
    if sys.stdout is None:  # started with >&-
        raise OutputError("standard output", OSError(errno.EBADF, "it is closed"))
    fd, mode = _file_type(sys.stdout)
    if fd is None or not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return GuardedText(sys.stdout, "standard output", close=False)
    sys.stdout.flush()  # nothing of ours may be left in its buffer to come out later
    return PipeText(fd, sys.stdout.encoding or "utf-8", sys.stdout.errors or "strict",
                    is_pipe=stat.S_ISFIFO(mode))


def _room_now(fd: int) -> bool:
    try:
        return bool(select.select([], [fd], [], 0)[1])
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def interrupts_as_exceptions(output: IO[str] | None) -> Iterator[None]:
    """The first Ctrl-C or SIGTERM raises KeyboardInterrupt in this (the main) greenlet
    where it next waits, which stops the run and writes its summary; a second one exits at
    once (130), whatever the process is doing.

    Both are Python-level handlers, which run at once in busy Python code (reading a
    large input through first) and which a blocked system call (a write to a full pipe)
    gives way to. gevent's loop checks for such signals after each wait, so a signal that
    lands between that check and the next wait stays unhandled until something else wakes
    the loop: never, when the run's only work left is a write to a full pipe. So every
    signal also wakes the loop, through :func:`signal.set_wakeup_fd` and a watcher on its
    pipe, as asyncio does.
    The first handler does not raise where it runs (often in gevent's hub, which would
    print it as a crash; or in the middle of the scheduler's bookkeeping): it hands the
    interrupt to the main greenlet. The second flushes ``output`` when it is a file (None:
    nothing to flush; a pipe is never waited for) and exits.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread; nothing to route
        return
    main_greenlet, signals = gevent.getcurrent(), (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.getsignal(signum) for signum in signals}

    def exit_now(*_: Any) -> None:
        message = "batchfetch: interrupted again: exiting now"
        if isinstance(output, PipeText):
            lost = output.lines_waiting()
            if lost:
                message += f"; finished rows the reader had not taken: {lost}"
        elif output is not None and getattr(output, "started", True):  # not empty FILE now
            with contextlib.suppress(Exception):
                output.flush()
        if _room_now(2):  # a message, unless stderr is a pipe nobody reads
            with contextlib.suppress(OSError):
                os.write(2, message.encode() + b"\n")
        os._exit(EXIT_INTERRUPTED)

    def first(*_: Any) -> None:
        for signum in signals:
            signal.signal(signum, exit_now)
        gevent.kill(main_greenlet, KeyboardInterrupt)

    for signum in signals:
        signal.signal(signum, first)
    try:
        with _signals_wake_the_loop():
            yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def _signals_wake_the_loop() -> Iterator[None]:
    """Make every signal wake gevent's loop, so a Python-level handler runs at once."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    # ref=False: this watcher alone must not keep the loop from seeing it would block forever.
    watcher = gevent.get_hub().loop.io(read_end, 1, ref=False)  # 1: readable

    def drained() -> None:  # Python code in the hub: the pending handlers run first
        with contextlib.suppress(OSError):
            while os.read(read_end, 512):
                pass

    watcher.start(drained)
    previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        watcher.stop()
        watcher.close()
        os.close(read_end)
        os.close(write_end)


def silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush cannot fail again
    (the Python docs' recipe for SIGPIPE; SIGPIPE itself stays ignored, or a peer
    resetting one of our sockets would kill the process)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # none, or not a real file (CliRunner)
        pass


# -- choosing and checking the output, before anything is written -----------------------


def stdout_is_a_terminal() -> bool:
    return sys.stdout is not None and sys.stdout.isatty()


def format_for(path: str | None, demo: bool) -> str:
    """The rows' format by the output file's extension (none: JSON Lines); else a table
    for people, JSON Lines for programs. An extension it does not know is a usage error,
    not JSON Lines in a file called out.xlsx.

    Example::

        >>> format_for("rows.csv", demo=False), format_for("rows", demo=False)
        ('csv', 'jsonl')
    """
    if path not in (None, "-"):
        try:
            return format_for_path(path).name
        except ValueError:
            suffix = os.path.splitext(path)[1].lower()
            raise click.BadParameter(
                f"cannot tell a format from {suffix!r}: name the file "
                f"{listed(output_suffixes(with_names=True))}, or give -f FORMAT",
                param_hint="'-o' / '--output'") from None
    return "table" if demo or stdout_is_a_terminal() else "jsonl"


def check_output_file(output: str, inputs: list[str | IO[bytes]]) -> None:
    """Usage errors, before anything is written: -o FILE is an input (a path or a stream),
    or not writable."""
    same = False
    for source in inputs if os.path.exists(output) else ():
        try:
            found = os.stat(source) if isinstance(source, str) else os.fstat(source.fileno())
            same = same or os.path.samestat(found, os.stat(output))
        except (AttributeError, OSError, ValueError):  # an in-memory input: not a file
            pass
    if same:
        raise click.BadParameter(f"{output!r} is an input file: its rows would overwrite "
                                 f"the URLs being read", param_hint="'-o' / '--output'")
    try:
        check_writable(output)
    except OSError as exc:
        raise click.BadParameter(f"cannot write {output!r}: {exc.strerror}",
                                 param_hint="'-o' / '--output'") from None
