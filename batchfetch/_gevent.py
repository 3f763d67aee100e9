"""The one place where batchfetch monkey-patches the process for gevent.

Importing :mod:`batchfetch` imports this module first, so the whole process is
patched before ``requests``, ``urllib3`` or ``ssl`` are loaded by batchfetch.
"""
from __future__ import annotations

import os
import sys
import warnings

from gevent import monkey

# Exactly grequests' arguments: grequests calls patch_all(thread=False,
# select=False) when it is imported, and gevent warns (MonkeyPatchWarning)
# whenever a second call asks for a different set of modules. Leaving threads
# unpatched keeps real threads real for users who mix in thread pools.
PATCH_ARGUMENTS = {"thread": False, "select": False}

# Modules that hold references to the unpatched ``ssl.SSLContext`` when they
# are imported before patching (gevent issue 1016: sockets that block the
# whole hub, and RecursionError on some versions).
_EARLY_IMPORT_SENSITIVE = ("ssl", "urllib3", "requests")


class ImportOrderWarning(UserWarning):
    """``ssl``, ``urllib3`` or ``requests`` was imported before batchfetch."""


def _imported_too_early() -> list[str]:
    if monkey.is_module_patched("ssl"):
        return []
    return [name for name in _EARLY_IMPORT_SENSITIVE if name in sys.modules]


def _repair_ssl_references() -> None:
    """Point urllib3's direct ``SSLContext`` imports at gevent's class.

    urllib3 does ``from ssl import SSLContext`` at import time, so a late
    patch leaves it building unpatched contexts whose handshakes block every
    greenlet. Rebinding those names is what makes a late import still work.
    """
    import ssl

    original = monkey.get_original("ssl", "SSLContext")
    for name in ("urllib3.util.ssl_", "urllib3.util"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "SSLContext", None) is original:
            module.SSLContext = ssl.SSLContext


def _user_stacklevel() -> int:
    """The stacklevel that points a warning at the user's ``import`` line."""
    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith("<frozen importlib"):
            frame = frame.f_back  # warnings.warn skips import machinery frames itself
            continue
        if not filename.startswith(here):
            return level
        frame, level = frame.f_back, level + 1
    return 1


def patch_process() -> None:
    """Monkey-patch the process once, with grequests' arguments."""
    too_early = _imported_too_early()
    with warnings.catch_warnings():
        # gevent's own warning about a late ssl import names no fix; ours does.
        warnings.simplefilter("ignore", monkey.MonkeyPatchWarning)
        monkey.patch_all(**PATCH_ARGUMENTS)
    if too_early:
        _repair_ssl_references()
        names = ", ".join(too_early)
        warnings.warn(
            f"{names} was imported before batchfetch. batchfetch patches the process "
            "with gevent, which must happen before ssl is loaded: make `import batchfetch` "
            f"the first import of your program (above `import {too_early[-1]}`). "
            "batchfetch repaired urllib3's TLS context so this run still works.",
            ImportOrderWarning,
            stacklevel=_user_stacklevel(),
        )


patch_process()
