"""Length-prefixed pickle frames: how the parent and its worker processes talk.

Both ends are trusted (the parent starts its own workers), so pickle is safe here
and carries items, options, rows and exceptions as they are.
"""
from __future__ import annotations

import pickle
import struct
from typing import IO, Any

__all__ = ["write_frame", "read_frame"]

_LENGTH = struct.Struct("!I")


def write_frame(stream: IO[bytes], message: Any) -> None:
    """Write one message and flush it."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(payload)) + payload)
    stream.flush()


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
