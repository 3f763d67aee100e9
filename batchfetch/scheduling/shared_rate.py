"""``rate`` across the worker processes of a distributed run: one schedule of start slots
in Redis, handed out a few at a time.

Redis keeps the time of the run's next free slot; a worker asks for the next few slots
(an atomic script on Redis's own clock, so the machines' clocks do not matter), gets the
delay to the first, and starts one attempt per slot. Slots are ``1 / rate`` apart for the
whole run, so any second holds at most ``rate + 1`` starts, whatever the number of
workers; a slot not used within :data:`LATE` (or half an interval, if longer) is dropped,
never saved up (an idle period earns no burst, as with
:class:`~batchfetch.scheduling.hosts.StartRate`): a second holds at most rate + 1 starts,
and rate x LATE more above 50 a second. A worker asks for one slot at first, twice as
many each time it used all it had (up to :data:`LOOKAHEAD` seconds of them), and half as
many after it dropped one: a worker whose inputs are held back (per-host limits, a
Crawl-delay) wastes few slots.
"""
from __future__ import annotations

import logging
import math
import time
from collections import deque
from typing import Any

import gevent

log = logging.getLogger("batchfetch")

__all__ = ["SharedStartRate"]

#: How far ahead of Redis's clock slots are handed out, in seconds: a worker waits for
#: its slots locally, so one round trip serves this long.
LOOKAHEAD = 0.25
#: Seconds the scheduler waits before it looks again while slots are being fetched (it is
#: woken as soon as they come, through ``on_slots``).
POLL = 0.01
#: Seconds a slot may be used late: at high rates, the scheduler's own latency.
LATE = 0.01

# KEYS[1]: the time of the next free slot; KEYS[2]: the slots granted by second of Redis's
# clock (a hash, for whoever wants to check the schedule). ARGV: interval, the slots
# wanted, lookahead. Returns {slots granted, seconds from now to the first}.
_TAKE_SLOTS = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1e6
local interval, wanted, lookahead = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local next_free = tonumber(redis.call('GET', KEYS[1]) or '0')
if next_free < now then next_free = now end
local granted = math.min(wanted, math.floor((now + lookahead - next_free) / interval) + 1)
if granted < 1 then return {0, tostring(next_free - now)} end
redis.call('SET', KEYS[1], tostring(next_free + granted * interval), 'EX', 600)
for n = 0, granted - 1 do
  redis.call('HINCRBY', KEYS[2], math.floor(next_free + n * interval), 1)
end
redis.call('EXPIRE', KEYS[2], 600)
return {granted, tostring(next_free - now)}
"""


class SharedStartRate:
    """At most ``rate`` starts per second across every process that shares ``key``.

    The same two calls as :class:`~batchfetch.scheduling.hosts.StartRate`, so a
    LocalEngine takes either; slots are fetched in a greenlet, never in the caller.
    """

    def __init__(self, client: Any, key: str, rate: float) -> None:
        self.interval = 1.0 / rate
        self.key = key
        self.grants_key = f"{key}:grants"
        self._take = client.register_script(_TAKE_SLOTS)
        self._slots: deque[float] = deque()  # monotonic times from which a start may go
        self._fetching: gevent.Greenlet | None = None
        self._most = max(1, math.ceil(LOOKAHEAD / self.interval))
        self._wanted = 1
        self._missed = False  # a slot of the latest grant went unused
        self._late = max(LATE, self.interval / 2)
        #: Called when slots arrive (the engine's scheduler sets it to wake itself).
        self.on_slots: Any = None

    def wait_time(self, now: float) -> float:
        """Seconds until the next start is allowed (0.0 when it is allowed now)."""
        while self._slots and self._slots[0] + self._late < now:
            self._slots.popleft()  # missed: used late, it would make a burst
            self._missed = True
        if self._slots:
            return max(0.0, round(self._slots[0] - now, 9))
        if self._fetching is None:
            self._wanted = max(1, self._wanted // 2) if self._missed \
                else min(self._most, 2 * self._wanted)
            self._missed = False
            self._fetching = gevent.spawn(self._fetch)
        return POLL

    def started(self, now: float) -> None:
        """Use up the slot that allowed this start."""
        if self._slots and self._slots[0] <= now:
            self._slots.popleft()

    def _fetch(self) -> None:
        try:
            while True:
                try:
                    granted, delay = self._take(keys=[self.key, self.grants_key], args=[
                        self.interval, self._wanted, LOOKAHEAD])
                except Exception as exc:  # noqa: BLE001 - Redis away: no start until it is back
                    log.warning("cannot take start slots from the broker: %s", exc)
                    gevent.sleep(1.0)
                    continue
                # Counted from the answer, which came after Redis read its clock: a slot
                # is late by the round trip at most, never early.
                answered = time.monotonic()
                if int(granted):
                    first = answered + float(delay)
                    self._slots.extend(first + n * self.interval for n in range(int(granted)))
                    if self.on_slots is not None:
                        self.on_slots()
                    return
                gevent.sleep(min(float(delay), LOOKAHEAD))
        finally:
            self._fetching = None
