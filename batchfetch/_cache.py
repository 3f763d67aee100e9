"""One small bounded cache: a dict that starts again when it is full.

batchfetch remembers a few things it works out per origin or per header set (a host key,
a host's proxies, encoded header lines): a run has few of each, but an input may have
millions. Forgetting everything past a limit costs one recomputation per entry afterwards
and nothing on a hit, where an LRU would add bookkeeping to every lookup.
"""
from __future__ import annotations

from typing import Any

__all__ = ["BoundedCache"]


class BoundedCache(dict):
    """A dict of at most ``limit`` entries: :meth:`remember` empties it when full.

    Example::

        >>> cache = BoundedCache(limit=2)
        >>> cache.remember("a", 1), cache.remember("b", 2), cache.remember("c", 3)
        (1, 2, 3)
        >>> cache
        {'c': 3}
    """

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, key: Any, value: Any) -> Any:
        """Store ``value`` under ``key`` (first forgetting everything, when full); return it."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
