"""Saving response bodies to files: safe, unique, stable names, no partial files, and
nothing written through a link that already sits in the directory.

A body is written to ``NAME.part`` while it downloads and renamed to ``NAME``
only once it is complete, so a body cut by max_bytes, the deadline or a reset
leaves nothing behind.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import secrets
from urllib.parse import unquote, urlsplit

from .errors import SaveError

__all__ = ["file_name_for", "BodyFile", "HELD_SUFFIX", "drop_all_held", "drop_held", "kept_path",
           "settle"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: Longest file name written (well under the 255 bytes most file systems allow).
MAX_NAME = 120


def file_name_for(index: int, url: str) -> str:
    """A file name for input ``index`` fetched from ``url``: safe, unique, stable.

    The index makes it unique within a run and stable across runs over the same
    input (so ``--resume`` rewrites rather than duplicates); the host and the last
    path segment make it readable. Only ``[A-Za-z0-9._-]`` survive, so no URL can
    name a path outside the directory.

    Example::

        >>> file_name_for(7, "https://example.com/files/report%20v2.pdf?x=1")
        '00000007_example.com_report_v2.pdf'
        >>> file_name_for(8, "http://h/../../etc/passwd")
        '00000008_h_passwd'
    """
    parts = urlsplit(url)
    segment = unquote(parts.path.rstrip("/").rsplit("/", 1)[-1]) if parts.path else ""
    words = [_UNSAFE.sub("_", piece).strip("._") for piece in (parts.hostname or "", segment)]
    slug = "_".join(word for word in words if word) or "body"
    name = f"{index:08d}_{slug}"
    return name[:MAX_NAME]


#: Create only, never open what is there: a link or file planted at the name makes the open
#: fail instead of being followed or reused.
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
    | getattr(os, "O_CLOEXEC", 0)


def _create_partial(path: str) -> int:
    """Open a new ``path`` for writing; whatever was at that name (a partial file a killed
    run left, a symlink someone planted) is unlinked first, never followed or written to."""
    for _ in range(2):
        try:
            return os.open(path, _CREATE, 0o666)
        except FileExistsError:
            try:
                os.unlink(path)  # removes a link itself, never what it points at
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                break
    raise FileExistsError(errno.EEXIST, "cannot replace what is there with a partial body",
                          path)


class BodyFile:
    """The file one response body is streamed into; ``commit()`` or ``discard()`` it.

    OS errors (a full disk, no permission, a directory at the name) raise
    :class:`~batchfetch.errors.SaveError`, which makes the row's error kind ``save``.

    Example::

        >>> os.makedirs("out", exist_ok=True)   # BodyFile creates the file, not its folder
        >>> sink = BodyFile("out", 3, "http://127.0.0.1/a.json")
        >>> sink.write(b"{}"); sink.commit()
        'out/00000003_127.0.0.1_a.json'
    """

    def __init__(self, directory: str, index: int, url: str, held: bool = False) -> None:
        self.path = os.path.join(directory, file_name_for(index, url))
        # A held body has a name of its own: two answers for one input (a repeated index)
        # must not share one file until each is kept or dropped.
        self._partial = f"{self.path}.{secrets.token_hex(4)}{HELD_SUFFIX}" if held \
            else self.path + ".part"
        try:
            self._file = os.fdopen(_create_partial(self._partial), "wb")
        except OSError as exc:
            raise SaveError(self._partial, exc) from exc

    def write(self, chunk: bytes) -> None:
        try:
            self._file.write(chunk)
        except OSError as exc:
            raise SaveError(self._partial, exc) from exc

    def commit(self) -> str:
        """Finish the file under its final name and return that path.

        The rename replaces whatever sits at the final name, a symlink included, without
        following it.
        """
        try:
            self._file.close()
            os.replace(self._partial, self.path)
        except OSError as exc:
            raise SaveError(self.path, exc) from exc
        return self.path

    def hold(self) -> str:
        """Finish the file under its held name (``NAME.<random>.held``, with ``held=True``)
        and return that path, for :func:`settle` to keep or drop later."""
        try:
            self._file.close()
        except OSError as exc:
            raise SaveError(self._partial, exc) from exc
        return self._partial

    def discard(self) -> None:
        """Remove the partial file (the body was cut or failed)."""
        try:
            self._file.close()
        except OSError:
            pass  # a full disk refusing the last bytes: the file goes anyway
        try:
            os.unlink(self._partial)
        except FileNotFoundError:
            pass


#: The suffix of a body held for :func:`settle`.
HELD_SUFFIX = ".held"


def drop_held(held: str) -> None:
    """Remove a body :meth:`BodyFile.hold` left (gone already, or not removable: left)."""
    with contextlib.suppress(OSError):
        os.unlink(held)


def drop_all_held(directory: str, index: int, url: str) -> None:
    """Remove every body held for input ``index`` (from ``url``): a run that stopped before
    their rows were settled."""
    pattern = glob.escape(os.path.join(directory, file_name_for(index, url))) + ".*" \
        + HELD_SUFFIX
    for held in glob.glob(pattern):
        drop_held(held)


def kept_path(held: str) -> str:
    """The name a held body is kept under: ``NAME`` of ``NAME.<random>.held``."""
    return held.removesuffix(HELD_SUFFIX).rpartition(".")[0]


def settle(held: str, keep: bool) -> str:
    """Keep a body :meth:`BodyFile.hold` left at ``held`` (renamed to its final name, which
    is returned) or drop it (``""`` is returned); SaveError if the rename fails (the held
    body is dropped).

    Example::

        >>> os.makedirs("out", exist_ok=True)
        >>> sink = BodyFile("out", 4, "http://127.0.0.1/b.json", held=True)
        >>> sink.write(b"{}"); held = sink.hold()
        >>> settle(held, keep=True), os.path.exists(held)
        ('out/00000004_127.0.0.1_b.json', False)
    """
    if not keep:
        drop_held(held)
        return ""
    path = kept_path(held)
    try:
        os.replace(held, path)
    except OSError as exc:
        drop_held(held)
        raise SaveError(path, exc) from exc
    return path
