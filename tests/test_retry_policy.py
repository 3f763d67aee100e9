"""The retry policy on its own: decisions, backoff and Retry-After, with no sockets.

``decide`` is a pure function of the options and one attempt's outcome (clock and random
generator passed in), so each rule is checked here directly; the fetching tests check
that the scheduler follows it.
"""
import random

import pytest

from batchfetch import FetchOptions
from batchfetch.scheduling.retry import backoff_delay, decide, parse_retry_after
from batchfetch.transport.base import Outcome

NOW = 1_700_000_000.0


def decision(outcome, method="GET", attempts=1, reused=False, throttled=0, throttled_wait=0.0,
             retries=None, **options):
    return decide(FetchOptions(**options), method, outcome, attempts, reused, NOW,
                  random.Random(7), throttled, throttled_wait, retries)


@pytest.mark.parametrize("kind", ["connect", "connect_timeout", "timeout", "deadline", "reset",
                                  "truncated"])
def test_an_idempotent_request_retries_transient_errors(kind):
    assert decision(Outcome(error=kind)).retry


@pytest.mark.parametrize("kind", ["dns", "tls", "protocol", "too_large", "invalid_url",
                                  "too_many_redirects", "save"])
def test_errors_the_network_will_not_mend_are_not_retried(kind):
    assert not decision(Outcome(error=kind)).retry


def test_a_post_retries_only_what_the_server_cannot_have_processed():
    assert decision(Outcome(error="connect"), method="POST").retry
    assert decision(Outcome(error="connect_timeout"), method="POST").retry
    assert not decision(Outcome(error="timeout"), method="POST").retry
    assert not decision(Outcome(error="reset"), method="POST").retry  # a fresh connection
    assert decision(Outcome(error="reset"), method="POST", reused=True).retry
    assert decision(Outcome(error="timeout"), method="POST", retry_non_idempotent=True).retry


def test_retries_run_out_after_the_retries_option_or_a_host_rules_retries():
    def made(attempts, **kwargs):
        return decision(Outcome(error="timeout"), attempts=attempts, **kwargs).retry

    assert made(3, retries=3) and not made(4, retries=3)  # a hosts rule's retries
    options = FetchOptions(retries=1)
    assert decide(options, "GET", Outcome(error="timeout"), 1, False, NOW, random.Random(0)).retry
    assert not decide(options, "GET", Outcome(error="timeout"), 2, False, NOW,
                      random.Random(0)).retry


def test_a_503_with_retry_after_waits_as_asked_and_pauses_the_host():
    made = decision(Outcome(status=503, error="http", retry_after="2"))
    assert (made.retry, made.wait, made.cool_down) == (True, 2.0, True)


def test_a_retry_after_beyond_max_retry_wait_is_refused_with_the_reason():
    made = decision(Outcome(status=503, error="http", retry_after="600"), max_retry_wait=60)
    assert not made.retry
    assert made.message == "Retry-After 600 asks for 600 s, more than max_retry_wait=60 s"


def test_a_status_outside_retry_on_is_not_retried():
    assert not decision(Outcome(status=404, error="http")).retry
    assert decision(Outcome(status=502, error="http")).retry


def test_a_429_does_not_count_against_retries():
    made = decision(Outcome(status=429, error="http", retry_after="1"), attempts=5, retries=0,
                    throttled=4, throttled_wait=4.0)
    assert (made.retry, made.throttled, made.cool_down, made.wait) == (True, True, True, 1.0)


def test_throttled_retries_stop_at_their_count_and_their_total_wait():
    capped = decision(Outcome(status=429, error="http", retry_after="1"), throttled=10,
                      throttled_retries=10)
    assert not capped.retry and "after 10 throttled retries" in capped.message
    waited = decision(Outcome(status=429, error="http", retry_after="5"), throttled=3,
                      throttled_wait=58.0, max_retry_wait=60)
    assert not waited.retry and "58.0 s of waiting" in waited.message


def test_a_post_meeting_a_429_without_retry_after_is_not_retried():
    assert not decision(Outcome(status=429, error="http"), method="POST").retry
    assert decision(Outcome(status=429, error="http", retry_after="1"), method="POST").retry


def test_backoff_is_exponential_with_equal_jitter_under_its_cap():
    options = FetchOptions(backoff=0.5, max_retry_wait=3)
    rng = random.Random(1)
    for attempts, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        waits = [backoff_delay(options, attempts, rng) for _ in range(200)]
        assert ceiling / 2 <= min(waits) and max(waits) <= ceiling


@pytest.mark.parametrize("value, seconds", [
    ("120", 120.0), ("  7 ", 7.0), ("0", 0.0),
    ("Tue, 14 Nov 2023 22:13:30 GMT", 10.0),     # NOW is 22:13:20 that day
    ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),      # a date in the past: no wait
    ("soon", None), ("-5", None), ("", None), (None, None), ("1.5", None),
])
def test_retry_after_is_delta_seconds_or_an_http_date(value, seconds):
    assert parse_retry_after(value, NOW) == seconds
