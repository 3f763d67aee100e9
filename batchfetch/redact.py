"""Keeping URL passwords out of what batchfetch shows: rows, messages and log lines.

A request still uses the password in its URL; only what is written or logged shows
``http://user:***@host/``. Only the password part of the user info is masked: a query
parameter holding a key is the URL's own business.
"""
from __future__ import annotations

import re

__all__ = ["MASK", "mask_passwords"]

MASK = "***"

# scheme://user:password@ where the password runs to the authority's last '@' (as urllib3
# splits it: a password written with a raw '@' is masked whole), never past '/', '?', '#'.
_USER_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*):[^\s/?#]*@")


def mask_passwords(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` in it masked.

    Example::

        >>> mask_passwords("http://alice:s3cret@api.example/v1?page=2")
        'http://alice:***@api.example/v1?page=2'
        >>> mask_passwords("cannot parse 'http://bob:p@ss@[::1/'")
        "cannot parse 'http://bob:***@[::1/'"
    """
    if "@" not in text:  # nearly always: no search at all
        return text
    return _USER_PASSWORD.sub(rf"\1:{MASK}@", text)
