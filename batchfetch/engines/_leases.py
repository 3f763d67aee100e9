"""The leases a distributed worker process holds on chunks: taken when a chunk arrives,
renewed every third of their length, released when it ends. A lease that lapses (the
worker died, or stalled) lets the driver send the chunk's inputs to another worker.
"""
from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["Leases"]

log = logging.getLogger("batchfetch")

# Renew or release a lease only if this process still holds it: another may have taken
# the chunk after ours lapsed (a pause), and must keep it.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class Leases:
    """This process's leases (Redis keys holding ``token``), by key."""

    def __init__(self, client: Any, token: str) -> None:
        self.client, self.token = client, token
        self.held: dict[str, int] = {}  # key -> its length in milliseconds
        self._due: dict[str, float] = {}  # key -> when it is renewed next
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def take(self, key: str, lease_ms: int) -> bool:
        """Hold ``key`` (True), unless another process holds it."""
        if self.client.set(key, self.token, nx=True, px=lease_ms) or (
                self.client.get(key) or b"").decode() == self.token:
            self.held[key] = lease_ms
            return True
        return False

    def drop(self, key: str) -> None:
        if self.held.pop(key, None) is not None:
            self._due.pop(key, None)
            self._release(keys=[key], args=[self.token])

    def renew_due(self) -> None:
        """Renew each lease held whose third has passed; forget one that lapsed."""
        now = time.monotonic()
        for key, lease_ms in list(self.held.items()):
            if self._due.setdefault(key, now + lease_ms / 3000) > now:
                continue
            self._due[key] = now + lease_ms / 3000
            try:
                if not self._renew(keys=[key], args=[self.token, lease_ms]):
                    self.held.pop(key, None)  # lapsed: the driver sends it again
                    self._due.pop(key, None)
            except Exception as exc:  # noqa: BLE001 - Redis away: tried again soon
                log.warning("could not renew %s: %s", key, exc)
