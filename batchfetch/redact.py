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

__all__ = ["MASK", "mask_passwords", "mask_url", "shown_option"]

MASK = "***"

# user:password@ where the user starts a word, or follows '/' (scheme://, and the typos
# http:/ and //) or a quote, and the password runs to the authority's last '@' (as urllib3
# splits it: a password written with a raw '@' is masked whole), never past '/', '?', '#'
# or a space. A URL with a typo (no scheme, 'http:user:pw@') is masked too, more widely.
_USER_PASSWORD = re.compile(r"""(?<![^\s/'"(=<,;])([^\s/?#@:'"]*):[^ \r\n/?#]*@""")


# scheme://user:password@, the password running to the authority's last '@' (as urllib3
# splits it: a password written with a raw '@' is masked whole), never past '/', '?', '#'.
_URL_USER_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*):[^ \r\n/?#]*@")


def mask_url(url: str) -> str:
    """``url`` with the password of its user info masked, and of any URL nested in it
    (``?next=https://user:pw@host/``); nothing else is touched.

    For a URL that parses (a row's ``url`` and ``final_url``); text that may hold a URL
    with a typo goes to :func:`mask_passwords`.

    Example::

        >>> mask_url("https://ann:pw@api.example/a=:@b"), mask_url("http://:t@h/")
        ('https://ann:***@api.example/a=:@b', 'http://:***@h/')
    """
    if "@" not in url:  # nearly always: no search at all
        return url
    return _URL_USER_PASSWORD.sub(rf"\1:{MASK}@", url)


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
    if name == "auth":
        if isinstance(value, tuple) and value:
            return (value[0], *[MASK] * (len(value) - 1))
        return MASK if isinstance(value, (str, bytes)) else value
    if name == "cookies" and isinstance(value, Mapping):
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
