"""Each host's pace: how many requests it may have in flight and how often one may start,
lowered when the host says it is overloaded and raised again, slowly, by good answers.

Pure bookkeeping with no I/O and no clock reads: the dispatcher passes the times in.
"""
from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable
from typing import Hashable

from ._meter import AcceptedRate
from ..errors import ErrorKind

__all__ = ["Pacer", "HostPace", "overload_signal", "describe_pace"]

#: A 429 always means "too many requests": every one is a signal, and its retries do not
#: count against ``retries`` (retry.py: the run slows down instead).
THROTTLED_STATUS = 429
#: A 503 or a timeout means overload only when it is common: a flaky 503 in twenty answers
#: is not one (bench W5), a quarter of the answers since the host's last decrease is.
SHARED_STATUSES = frozenset({503})
SHARED_ERRORS = frozenset({ErrorKind.TIMEOUT, ErrorKind.CONNECT_TIMEOUT, ErrorKind.DEADLINE})
SHARED_SHARE = 0.25
SHARED_MINIMUM = 8
SHARED_SPAN = 200

#: After a decrease the host may have this share of the requests it had in flight.
WINDOW_DECREASE = 0.5
#: ... and start requests at this share of the rate its good answers came at.
RATE_DECREASE = 0.95
#: Each good answer raises the start rate by this many per second while it is below nine
#: tenths of the ceiling (the rate good answers came at when it was last lowered): a rate
#: r grows by 5 % per r answers (about a second's worth), so recovery is counted in
#: answers, not seconds.
RATE_STEP = 0.05
#: Near the ceiling it probes: the n-th answer since it got there adds PROBE_STEP * n / r,
#: growth that starts at nothing and quickens (as TCP CUBIC's does), so a server whose
#: limit has not moved is asked beyond it rarely, and one whose limit went up is found.
PLATEAU = 0.98
PROBE_STEP = 0.002
#: A measured rate over less than this many seconds not paused is not trusted alone: a
#: decrease then takes the rate in force, or the measure if lower, down by a quarter.
RATE_TRUST_SPAN = 1.0
UNTRUSTED_DECREASE = 0.75
#: The host's own pace is lifted once its rate has grown to this multiple of the rate
#: set at its last decrease (and its window back to the run's cap).
LIFT_FACTOR = 2.0
#: The weight of each good answer's latency in the host's moving average.
LATENCY_WEIGHT = 0.1
#: adaptive=True (TCP Vegas on requests in flight): the requests a host may have queued
#: (in flight beyond what its unloaded latency explains) before the window shrinks, and
#: below which it grows; once per window's worth of answers.
VEGAS_ALPHA = 2
VEGAS_BETA = 4
#: Slow start ends when a round's mean latency passes this multiple of the unloaded one.
SLOW_START_EXIT = 1.5
#: How fast the unloaded latency (the least seen) may drift up, per round toward the
#: round's least: a lasting change of the network or the server is accepted, a slow
#: round is not.
BASE_DRIFT = 0.002
#: Hosts whose state is kept (those with jobs queued or in flight always are), and hosts
#: named at the end of a run, at most: a run over millions of hosts keeps memory bounded;
#: a forgotten host starts over as a new one.
MAX_HOSTS = 10_000


def overload_signal(status: int | None, error: str) -> str:
    """The kind of overload an answer signals: ``"429"``, ``"503"``, ``"timeout"`` or "".

    Example::

        >>> overload_signal(429, "http"), overload_signal(None, "timeout"), overload_signal(200, "")
        ('429', 'timeout', '')
    """
    if status == THROTTLED_STATUS:
        return "429"
    if status in SHARED_STATUSES:
        return str(status)
    if status is None and error in SHARED_ERRORS:
        return "timeout"
    return ""


@dataclasses.dataclass(slots=True)
class HostPace:
    """One host's state: its answers, and its own limits once it has signalled overload.

    ``window`` (requests in flight) and ``rate`` (starts per second) are None while
    the run's own limits are the host's.
    """

    window: int | None = None
    credit: int = 0  # good answers toward the next step of the window
    # the user's limits for this host (a --hosts rule): a cap on the window, the least
    # interval between starts, and retries; set once, when the host is first seen
    configured: bool = False
    cap: int | None = None
    least_interval: float = 0.0
    least_reason: str = "rate"  # what set least_interval: "rate" or "crawl-delay"
    retries: int | None = None
    rate: float | None = None
    decreased_at: float = -math.inf
    ceiling: float | None = None
    rate_set: float = 0.0
    probe: int = 0
    latency: float | None = None  # of good answers, a moving average
    # adaptive=True: the least latency seen (drifting up slowly), and this round's answers
    base_latency: float | None = None
    round_latency: float = 0.0
    round_least: float = math.inf
    round_size: int = 0  # answers in this round: the window when it began
    slow_start: bool = True
    meter: AcceptedRate = dataclasses.field(default_factory=AcceptedRate)
    # answers and shared signals (503, timeouts) since the last decrease, halved together
    # every SHARED_SPAN answers; whether a good answer came since the last decrease
    answers: int = 0
    shared: int = 0
    good_since: bool = False
    # for the end summary
    signals: Counter = dataclasses.field(default_factory=Counter)
    decreases: int = 0
    lowest_rate: float | None = None
    lowest_window: int | None = None

    @property
    def paced(self) -> bool:
        return self.window is not None or self.rate is not None

    @property
    def in_flight_cap(self) -> int | None:
        """Requests in flight the host may have now (None: the run's per-host cap)."""
        if self.window is None:
            return self.cap
        return self.window if self.cap is None else min(self.window, self.cap)

    def interval(self) -> tuple[float, str]:
        """Seconds between starts the host needs now (0.0: none), and why: ``"backoff"``,
        or ``least_reason``."""
        if self.rate is not None and 1.0 / self.rate > self.least_interval:
            return 1.0 / self.rate, "backoff"
        return self.least_interval, self.least_reason

    def count_good(self, started: float, now: float) -> None:
        self.meter.count(started, now)

    def good_rate(self, now: float) -> float | None:
        return self.meter.rate(now)

    def active_span(self, now: float) -> float:
        return self.meter.active_span(now)

    def pause(self, start: float, end: float) -> None:
        """The host was told to wait from ``start`` to ``end`` (a Retry-After)."""
        self.meter.pause(start, end)


class Pacer:
    """Per-host back-off: one decrease per overload event, recovery per good answer.

    A 429 from an attempt that started after the host's last decrease is an event;
    so is a 503 or a timeout once they are a quarter of the host's answers since then
    (at least SHARED_MINIMUM of them). Answers to attempts that started before the
    last decrease never cause another: 100 429s in flight at once are one event, as
    losses within one window are for TCP. An event halves the host's requests in
    flight (of those in flight at the event) and sets its start rate to RATE_DECREASE of
    the rate at which attempts that got a good answer started, over the last few seconds
    less Retry-After pauses (that rate is its ceiling). Without such a measure yet, the
    first rate is the window's over the good answers' latency; a measure over less than
    RATE_TRUST_SPAN seconds not paused steps the rate down by a quarter. Each good
    answer then raises the window by one per window's worth of answers and the rate by
    RATE_STEP up to PLATEAU of the ceiling, then by a probe that quickens; once the window
    is back at the run's limits (``window_cap``) and the rate at twice the ceiling, the
    host's own pace is lifted.

    Example::

        >>> pacer = Pacer(window_cap=100)
        >>> for _ in range(10):
        ...     _ = pacer.answered("api", started=0.0, now=0.5, status=200, error="", in_flight=20)
        >>> pacer.answered("api", started=0.1, now=1.0, status=429, error="http", in_flight=20)
        True
        >>> pace = pacer.pace("api"); pace.window, round(pace.rate, 2)
        (10, 9.5)
        >>> pacer.answered("api", started=0.2, now=1.0, status=429, error="http", in_flight=19)
        False
    """

    def __init__(self, window_cap: int, adaptive: bool = False,
                 least_rate: float | None = None,
                 active: Callable[[Hashable], bool] | None = None,
                 keep: int = MAX_HOSTS) -> None:
        self.window_cap = window_cap
        self.adaptive = adaptive
        self.least_rate = least_rate
        self._active = active
        self._keep = keep
        self._hosts: dict[Hashable, HostPace] = {}  # oldest first
        self._throttled_pace: dict[Hashable, HostPace] = {}

    def pace(self, host: Hashable) -> HostPace:
        """The state of ``host`` (created empty for a new host)."""
        state = self._hosts.get(host)
        if state is None:
            if len(self._hosts) >= self._keep:
                self._forget_idle()
            state = self._hosts[host] = HostPace()
        return state

    def _forget_idle(self) -> None:
        """Drop the older half of the hosts with no job queued or in flight: a host seen
        again starts over, its rule and Crawl-delay applied again by whoever configures
        it. Hosts with jobs are never dropped, so the cost is paid once per half."""
        idle = [host for host in self._hosts
                if self._active is None or not self._active(host)][:len(self._hosts) // 2]
        for host in idle:
            del self._hosts[host]

    def throttled_hosts(self) -> dict[Hashable, HostPace]:
        """Hosts that signalled overload during the run (the first MAX_HOSTS of them),
        with their state as it was last seen."""
        return self._throttled_pace

    def answered(self, host: Hashable, started: float, now: float, status: int | None,
                 error: str, in_flight: int) -> bool:
        """Book one attempt's answer; True if it lowered the host's pace.

        ``in_flight`` is the host's requests in flight when the answer came, this
        attempt included.
        """
        state = self.pace(host)
        signal = overload_signal(status, error)
        stale = started < state.decreased_at
        if signal:
            state.signals[signal] += 1
            if host in self._throttled_pace or len(self._throttled_pace) < MAX_HOSTS:
                self._throttled_pace[host] = state
        if not stale:
            state.answers += 1
            if signal and signal != "429":
                state.shared += 1
            if state.answers >= SHARED_SPAN:  # a share of recent answers, not of the run's
                state.answers //= 2
                state.shared //= 2
        if not signal:
            if status is not None and status < 500:
                latency = now - started
                state.latency = latency if state.latency is None else (
                    state.latency + LATENCY_WEIGHT * (latency - state.latency))
                if self.adaptive:
                    self._adapt(state, latency, in_flight)
                self._good(state, started, now)
            return False
        if stale or (state.decreases and not state.good_since):
            # No good answer since the last decrease: a host that refuses everything
            # (a quota used up) is left to its Retry-After and the rows' own limits;
            # lowering its pace once per answer would space its starts by days.
            return False
        if signal != "429" and (state.shared < SHARED_MINIMUM
                                or state.shared < SHARED_SHARE * state.answers):
            return False
        self._decrease(state, now, in_flight)
        return True

    def _good(self, state: HostPace, started: float, now: float) -> None:
        state.count_good(started, now)
        state.good_since = True
        if state.window is not None and not self.adaptive:
            state.credit += 1
            if state.credit >= state.window:  # one more per window's worth of good answers
                state.window += 1
                state.credit = 0
                if state.window >= (state.cap or self.window_cap):
                    state.window = None
        if state.rate is not None:
            ceiling = state.ceiling
            if ceiling is None:
                state.rate += 2 * RATE_STEP  # no rate measured yet: find it sooner
            elif state.rate < PLATEAU * ceiling:
                state.rate += RATE_STEP
            else:
                state.probe += 1
                state.rate += PROBE_STEP * state.probe / state.rate
            if state.window is None and state.rate >= LIFT_FACTOR * (ceiling or state.rate_set):
                state.rate = None

    def _adapt(self, state: HostPace, latency: float, in_flight: int) -> None:
        """adaptive=True: TCP Vegas's rule on the host's requests in flight.

        Slow start adds one per good answer (doubling each round) until a round's mean
        latency passes SLOW_START_EXIT times the unloaded one; then, once per round, the
        requests queued at the host, ``window * (1 - unloaded / mean latency)``, are kept
        between VEGAS_ALPHA and VEGAS_BETA, one step at a time.
        """
        base = state.base_latency
        if base is None or latency < base:
            state.base_latency = base = latency
        state.round_least = min(state.round_least, latency)
        cap = state.cap or self.window_cap
        if state.window is None:
            state.window = max(1, min(in_flight, cap))  # what the opening let through
            state.round_size = state.window
        state.round_latency += latency
        state.credit += 1
        if state.slow_start:
            state.window = min(cap, state.window + 1)
        if state.credit < state.round_size:
            return
        mean = state.round_latency / state.credit
        # A lasting change of the network or the server is accepted, slowly: each round
        # moves the unloaded latency toward the round's least by BASE_DRIFT.
        state.base_latency = base = base + BASE_DRIFT * (state.round_least - base)
        state.credit, state.round_latency, state.round_least = 0, 0.0, math.inf
        state.round_size = state.window  # the next round: the answers to this window
        if mean <= 0:
            return
        if state.slow_start:
            if mean > SLOW_START_EXIT * base:
                state.slow_start = False
                state.window = max(1, int(state.window * base / mean) + VEGAS_ALPHA)
                state.round_size = state.window
            return
        queued = state.window * (1.0 - base / mean)
        if queued < VEGAS_ALPHA:
            state.window = min(cap, state.window + 1)
        elif queued > VEGAS_BETA:
            state.window = max(1, state.window - 1)
        state.round_size = state.window

    def _decrease(self, state: HostPace, now: float, in_flight: int) -> None:
        current = state.window if state.window is not None else in_flight
        # Before any good answer, the requests in flight include those the server is
        # refusing: a quarter, so that a resume after a Retry-After pause does not spend
        # the server's refilled burst at once and draw the next pause.
        share = WINDOW_DECREASE if state.latency is not None else WINDOW_DECREASE / 2
        state.window = max(1, math.floor(min(current, in_flight) * share))
        state.credit, state.round_latency, state.slow_start = 0, 0.0, False
        state.round_size = state.window
        good_rate, span = state.good_rate(now), state.active_span(now)
        if state.rate is not None and (good_rate is None or span < RATE_TRUST_SPAN):
            # Too little time between pauses to trust a measure: each resume spends the
            # burst a server refills during a pause, which makes the rate look higher than
            # it is; step down from the lower of the two by a quarter instead.
            state.rate = UNTRUSTED_DECREASE * min(state.rate, good_rate or state.rate)
        elif good_rate is not None:
            state.ceiling = good_rate
            # One event, one decrease: below the rate in force too, or an estimate raised
            # by a burst would leave the rate as it was.
            state.rate = RATE_DECREASE * (good_rate if state.rate is None
                                          else min(good_rate, state.rate))
        elif state.latency:
            # Too few answers to measure the rate they come at: the window's rate. Without
            # it, a window that regrows by one per round trip overshoots a rate limit again
            # within a few round trips, before the server's bucket has refilled.
            state.rate = state.window / state.latency
        state.probe = 0
        if state.rate is not None:
            if self.least_rate:
                state.rate = max(state.rate, self.least_rate)
            state.rate_set = state.rate
            state.lowest_rate = min(state.lowest_rate or state.rate, state.rate)
        state.lowest_window = min(state.lowest_window or state.window, state.window)
        state.decreased_at = now
        state.decreases += 1
        state.good_since = False
        state.answers = state.shared = 0


def describe_pace(pace: HostPace) -> str:
    """The host's own limits in words, e.g. ``"4 in flight, 9.5 req/s"``.

    Example::

        >>> describe_pace(HostPace(window=4, rate=9.46))
        '4 in flight, 9.46 req/s'
    """
    parts = []
    if pace.window is not None:
        parts.append(f"{pace.window} in flight")
    if pace.rate is not None:
        parts.append(f"{pace.rate:.3g} req/s")
    return ", ".join(parts) or "the run's own limits"
