"""Keeping secrets out of what batchfetch shows: URL passwords in rows, messages and log
lines; the auth password, credential headers, cookies and proxy passwords in the repr of
options and in option errors.

A request still uses the password in its URL; only what is written or logged shows
``http://user:***@host/``. Only the password part of the user info is masked: a query
parameter holding a key is the URL's own business.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "mask_broker", "mask_line", "mask_passwords", "mask_url", "shown_option"]

MASK = "***"

# user:password@ where the user starts a word, or follows '/' (scheme://, and the typos
# http:/ and //) or a quote, and the password runs to the authority's last '@' (as urllib3
# splits it: a password written with a raw '@' is masked whole), never past '/', '?', '#'
# or a space. A URL with a typo (no scheme, 'http:user:pw@') is masked too, more widely.
_USER_PASSWORD = re.compile(r"""(?<![^\s/'"(=<,;])([^\s/?#@:'"]*):[^ \r\n/?#]*@""")


# scheme://user:password@ in text after a URL's authority (a URL nested in its query):
# the password runs to the last '@' before '/', '?', '#' or a space.
_URL_USER_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*):[^ \r\n/?#]*@")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# Where urllib3 ends a URL's authority.
_AUTHORITY_END = re.compile(r"[\\/?#]")


def mask_url(url: str) -> str:
    """``url`` with the password of its user info masked, and of any URL nested in it
    (``?next=https://user:pw@host/``); nothing else is touched.

    The user info is found as urllib3 finds it (the authority runs to the first '/', '?',
    '#' or backslash; the password from the first ':' to the authority's last '@'), so a
    password with a space or a raw '@' is masked whole. For a URL that parses (a row's
    ``url`` and ``final_url``); other text goes to :func:`mask_line` or
    :func:`mask_passwords`.

    Example::

        >>> mask_url("https://ann:p@ss w@api.example/a=:@b"), mask_url("http://:t@h/")
        ('https://ann:***@api.example/a=:@b', 'http://:***@h/')
    """
    if "@" not in url:  # nearly always: no search at all
        return url
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    end_found = _AUTHORITY_END.search(url, start)
    end = end_found.start() if end_found else len(url)
    userinfo, at, host = url[start:end].rpartition("@")
    user, colon, _ = userinfo.partition(":")
    head = f"{url[:start]}{user}:{MASK}@{host}" if scheme and at and colon else url[:end]
    rest = url[end:]
    return head + (_URL_USER_PASSWORD.sub(rf"\1:{MASK}@", rest) if "@" in rest else rest)


def mask_line(text: str) -> str:
    """An input line meant as a URL, with anything that may be a password masked: from the
    first ':' after the scheme's '//' (or the start) to the line's last '@'. For the url
    column of a line that is not a valid URL (a typo may still hold a password); it errs
    widely: ``http:/alice:pw@host`` becomes ``http:***@host``.

    Example::

        >>> mask_line("http://u:pa/ss@127.0.0.1/"), mask_line("alice:pw@host/x")
        ('http://u:***@127.0.0.1/', 'alice:***@host/x')
    """
    last_at = text.rfind("@")
    if last_at < 0:
        return text
    slashes = text.find("//")
    start = slashes + 2 if 0 <= slashes < last_at else 0
    colon = text.find(":", start, last_at)
    if colon < 0:
        return text
    return f"{text[:colon + 1]}{MASK}{text[last_at:]}"


def mask_passwords(text: str) -> str:
    """``text`` with the password of every ``user:password@`` in it masked: URLs in
    messages and log lines, and input lines that are not URLs (a typo may still hold one).
    It errs towards masking: ``/a=:@b`` in a path becomes ``/a=:***@b``.

    Example::

        >>> mask_passwords("http://alice:s3cret@api.example/v1?page=2")
        'http://alice:***@api.example/v1?page=2'
        >>> mask_passwords("cannot parse 'http://bob:p@ss@[::1/'")
        "cannot parse 'http://bob:***@[::1/'"
        >>> mask_passwords("no scheme in 'carol:pw@example.com/x'")
        "no scheme in 'carol:***@example.com/x'"
    """
    if "@" not in text:  # nearly always: no search at all
        return text
    return _USER_PASSWORD.sub(rf"\1:{MASK}@", text)


# Header names whose values are credentials (or look like them): never shown.
_SECRET_HEADER = re.compile(r"authorization|cookie|token|secret|key|password|session",
                            re.IGNORECASE)


def shown_option(name: str, value: Any) -> Any:
    """``value`` of the option ``name`` as batchfetch shows it (a repr, an error message):
    the auth password, credential-like header values, cookie values and passwords in URLs
    masked.

    Example::

        >>> shown_option("auth", ("ann", "s3cret")), shown_option("cookies", {"sid": "x"})
        (('ann', '***'), {'sid': '***'})
        >>> shown_option("headers", {"Authorization": "Bearer t", "Accept": "text/html"})
        {'Authorization': '***', 'Accept': 'text/html'}
    """
    if name == "broker" and isinstance(value, str):
        return mask_broker(value)
    if name == "auth":
        if isinstance(value, tuple) and value:
            return (value[0], *[MASK] * (len(value) - 1))
        return MASK if isinstance(value, (str, bytes)) else value
    if name in ("cookies", "files") and isinstance(value, Mapping):  # a part may be a secret
        return {key: MASK for key in value}
    if name == "headers" and isinstance(value, Mapping):
        return {key: MASK if _SECRET_HEADER.search(str(key)) else item
                for key, item in value.items()}
    if isinstance(value, Mapping):  # proxies: URLs with passwords
        return {key: mask_passwords(item) if isinstance(item, str) else item
                for key, item in value.items()}
    if isinstance(value, str):
        return mask_passwords(value)
    return value


def mask_broker(url: str) -> str:
    """A broker URL as outputs show it: the password masked in the user info and in a
    ``?password=`` query, which redis-py also takes.

    Example::

        >>> mask_broker("redis://:s3cret@127.0.0.1:6379/0?password=s3cret")
        'redis://:***@127.0.0.1:6379/0?password=***'
    """
    return re.sub(r"([?&]password=)[^&#]*", rf"\1{MASK}", mask_url(url))
