"""Checking request header, cookie, form and multipart values before any request path sees
them.

requests refuses a header value with a line break or leading whitespace, http.client
lets some through (a folded ``"a\\r\\n b"``), and a value outside Latin-1 fails only when
sent. Checked here once, a bad value is refused the same way whatever path a request
takes: as a usage error for an option, as an ``invalid_request`` row for an item.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["header_problem", "cookie_problem", "first_header_problem", "first_cookie_problem",
           "form_problem", "is_latin1", "multipart_parts"]

# requests' own rules (requests._internal_utils._HEADER_VALIDATORS_STR), which its path
# enforces: a name neither empty nor starting with whitespace or ':', without ':' or a line
# break. A value is checked by hand below: requests refuses a line break or leading
# whitespace; other control characters (NUL, ESC, DEL) it lets through, and RFC 9110 does
# not, so they are refused too. Messages never repeat a value: it may be a token.
_NAME = re.compile(r"[^:\s][^:\r\n]*\Z")
_BYTES_NAME = re.compile(rb"[^:\s][^:\r\n]*\Z")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _value_problem(what: str, text: str) -> str | None:
    found = _CONTROL.search(text)
    if found:
        where = f"at character {found.start() + 1}"
        if found.group() in "\r\n":
            return f"{what}: its value has a line break (CR or LF) {where}"
        return f"{what}: its value has a control character (0x{ord(found.group()):02x}) {where}"
    return None


def header_problem(name: Any, value: Any) -> str | None:
    """What is wrong with the header ``name: value``, or None if every path can send it.

    Example::

        >>> header_problem("X-Token", "abc") is None
        True
        >>> header_problem("X-Token", "abc\\r\\n def")
        "header 'X-Token': its value has a line break (CR or LF) at character 4"
    """
    if isinstance(name, bytes):
        name_ok = bool(_BYTES_NAME.match(name))
    else:
        name_ok = isinstance(name, str) and name.isascii() and bool(_NAME.match(name))
    if not name_ok:
        return (f"header name {name!r} is not valid (empty, starting with whitespace, or "
                f"with ':', a line break or a non-ASCII character)")
    if isinstance(value, str) and value.isascii() and value.isprintable() \
            and not value[:1].isspace():
        return None  # nearly every value: no control character, nothing past ASCII
    if isinstance(value, bytes):
        text = value.decode("latin-1")
    elif isinstance(value, str):
        text = value
    else:
        return f"header {name!r}: its value must be a string, got {type(value).__name__}"
    problem = _value_problem(f"header {name!r}", text)
    if problem:
        return problem
    if text[:1].isspace():
        return f"header {name!r}: its value starts with whitespace"
    if isinstance(value, str):
        return _latin1_problem(f"header {name!r}", value)
    return None


def is_latin1(text: str) -> bool:
    """Whether http.client can send ``text`` in a header line (it encodes them in Latin-1;
    anything else fails only when sent).

    Example::

        >>> is_latin1("caf\u00e9"), is_latin1("10 \u20ac")
        (True, False)
    """
    return text.isascii() or max(text) <= "\xff"


def _latin1_problem(what: str, text: str) -> str | None:
    if is_latin1(text):
        return None
    position = next(index for index, char in enumerate(text) if char > "\xff")
    return (f"{what}: its value has a character outside Latin-1 ({text[position]!r} at "
            f"character {position + 1}; send it percent- or RFC 8187-encoded)")


def first_header_problem(headers: Mapping[Any, Any], allow_none: bool = False) -> str | None:
    """The problem of the first bad header in ``headers``; with ``allow_none``, a None value
    (which removes a default header, as in requests) is fine.

    Example::

        >>> first_header_problem({"Accept": "text/html", "X-Id": 7})
        "header 'X-Id': its value must be a string, got int"
        >>> first_header_problem({"User-Agent": None}, allow_none=True) is None
        True
    """
    for name, value in headers.items():
        if value is None and allow_none:
            continue
        problem = header_problem(name, value)
        if problem:
            return problem
    return None


def cookie_problem(name: Any, value: Any) -> str | None:
    """What is wrong with the cookie ``name=value``, or None.

    Values may not hold a line break or another control character (they would break the
    Cookie header line); a name may not be empty or hold '=', ';', whitespace or control
    characters. ``a=1; b=2`` as one value is fine: it is how ``curl -b`` sends two.

    Example::

        >>> cookie_problem("session", "abc"), cookie_problem("sid", "a\\nb")
        (None, "cookie 'sid': its value has a line break (CR or LF) at character 2")
    """
    if not isinstance(name, str) or not name or re.search(r"[=;\s\x00-\x1f\x7f]", name):
        return (f"cookie name {name!r} is not valid (empty, or with '=', ';', whitespace or a "
                f"control character)")
    if not isinstance(value, str):
        return f"cookie {name!r}: its value must be a string, got {type(value).__name__}"
    return _value_problem(f"cookie {name!r}", value) or _latin1_problem(f"cookie {name!r}",
                                                                         value)


def first_cookie_problem(cookies: Mapping[Any, Any]) -> str | None:
    """The problem of the first bad cookie in ``cookies``, or None.

    Example::

        >>> first_cookie_problem({"sid": "1", "theme": "dark"}) is None
        True
    """
    for name, value in cookies.items():
        problem = cookie_problem(name, value)
        if problem:
            return problem
    return None


_FORM_SCALARS = (str, bytes, int, float)


def _form_value_ok(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(isinstance(item, _FORM_SCALARS) for item in value)
    return isinstance(value, _FORM_SCALARS)


def form_problem(data: Any) -> str | None:
    """What is wrong with ``data`` as a request body, or None: a string or bytes, or form
    fields (an object, or a list of pairs) whose values are text, numbers or lists of them.

    requests sends ``true`` or ``5`` nowhere sensible (a failed attempt with its internal
    message), and a nested object as its keys alone.

    Example::

        >>> form_problem({"q": "x", "ids": [1, 2]}), form_problem(True)
        (None, "'data' must be a string, an object of form fields or a list of pairs, got true")
    """
    if data is None or isinstance(data, (str, bytes)):
        return None
    if isinstance(data, Mapping):
        pairs = list(data.items())
    elif isinstance(data, (list, tuple)) and all(
            isinstance(pair, (list, tuple)) and len(pair) == 2 for pair in data):
        pairs = [tuple(pair) for pair in data]
    else:
        shown = "true" if data is True else "false" if data is False else repr(data)
        return (f"'data' must be a string, an object of form fields or a list of pairs, got "
                f"{shown}")
    for name, value in pairs:
        if not isinstance(name, (str, bytes)) or not _form_value_ok(value):
            return (f"'data' field {name!r} must be text, a number or a list of them, got "
                    f"{type(value).__name__}")
    return None


def multipart_parts(files: Any, contained: bool = False
                    ) -> dict[str, tuple[str | None, Any, str | None]]:
    """The parts of a multipart body as requests' ``files`` takes them, from ``files``:
    name -> text (a plain field, as curl's ``-F name=value``) or ``{"path": FILE}`` (a file
    read now, named by its base name, as ``-F name=@FILE``; ``"type"`` sets its
    Content-Type, ``"filename"`` the name sent), or ``{"content": BYTES}`` (a file's
    content given inline, with the same optional keys: how the distributed engine sends
    a file part to its workers). With ``contained`` (an input item's
    parts, which a file of request specs may hold), a file must be a regular file in the
    working directory or below it: a line of input cannot send ``/home/me/.ssh/id_rsa``
    or ``/dev/zero``. Raises ValueError saying what is wrong.

    Example::

        >>> multipart_parts({"note": "hi"})
        {'note': (None, 'hi', None)}
    """
    if not isinstance(files, Mapping) or not files:
        raise ValueError(f"'files' must be an object of parts, got {files!r}")
    parts = {}
    for name, part in files.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"'files' part names must be text, got {name!r}")
        if isinstance(part, (str, bytes)):
            parts[name] = (None, part, None)
            continue
        if isinstance(part, Mapping) and isinstance(part.get("content"), (str, bytes)) and all(
                key in ("content", "type", "filename") for key in part):
            parts[name] = (part.get("filename"), part["content"], part.get("type"))
            continue
        if not isinstance(part, Mapping) or not isinstance(part.get("path"), str) or any(
                key not in ("path", "type", "filename") for key in part):
            raise ValueError(f"'files' part {name!r} must be text or "
                             f"{{\"path\": FILE, \"type\": ..., \"filename\": ...}}, "
                             f"got {part!r}")
        if contained and not _inside_working_directory(part["path"]):
            raise ValueError(f"'files' part {name!r}: an input item's file must be a regular "
                             f"file in the working directory or below, not "
                             f"{part['path']!r} (give other files with -F or files=)")
        try:
            with open(part["path"], "rb") as stream:
                content = stream.read()
        except OSError as exc:
            raise ValueError(f"'files' part {name!r}: cannot read {part['path']!r}: "
                             f"{exc.strerror}") from None
        parts[name] = (part.get("filename") or os.path.basename(part["path"]), content,
                       part.get("type"))
    return parts


def _inside_working_directory(path: str) -> bool:
    """Whether ``path`` (links resolved) is a regular file in the working directory or
    below it."""
    here = os.path.realpath(os.getcwd())
    real = os.path.realpath(path)
    # A missing file passes here, and fails as one that cannot be read.
    return os.path.commonpath([here, real]) == here and (
        os.path.isfile(real) or not os.path.exists(real))
