"""Length-prefixed pickle frames: how the parent and its worker processes talk.

Both ends are trusted (the parent starts its own workers), so pickle is safe here
and carries items, options, rows and exceptions as they are.
"""
from __future__ import annotations

import pickle
import struct
from typing import IO, Any

import gevent
import gevent.lock

__all__ = ["FrameWriter", "read_frame"]

_LENGTH = struct.Struct("!I")


class FrameWriter:
    """Writes frames to a stream in batches: one write per burst, not one per frame.

    Frames written while the current greenlet runs are flushed together by a greenlet
    that runs once this one yields (to the hub or by blocking), so a burst of rows or
    items costs one system call, and no frame waits longer than that yield.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self._buffer = bytearray()
        self._flusher: gevent.Greenlet | None = None
        self._writing = gevent.lock.Semaphore()  # flushes must not interleave on the pipe
        #: The other end stopped reading (a flush failed); later writes raise BrokenPipeError.
        self.broken = False

    def write(self, message: Any) -> None:
        if self.broken:
            raise BrokenPipeError("the other end of the frame stream is closed")
        payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self._buffer += _LENGTH.pack(len(payload))
        self._buffer += payload
        if self._flusher is None:
            self._flusher = gevent.spawn(self._flush_soon)

    def _flush_soon(self) -> None:
        try:
            self.flush()
        except OSError:
            self.broken = True  # the reader went away; whoever writes next hears of it

    def flush(self) -> None:
        """Write out what is buffered now (OSError if the other end is gone)."""
        with self._writing:
            self._flusher = None
            data, self._buffer = bytes(self._buffer), bytearray()
            if data:
                self.stream.write(data)
                self.stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """Read one message; None when the other end closed the stream."""
    header = _read_exactly(stream, _LENGTH.size)
    if header is None:
        return None
    payload = _read_exactly(stream, _LENGTH.unpack(header)[0])
    return None if payload is None else pickle.loads(payload)


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks, missing = [], size
    while missing:
        chunk = stream.read(missing)
        if not chunk:
            return None
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)
