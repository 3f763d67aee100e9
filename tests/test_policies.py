"""The option families (Timeouts, RetryPolicy, Limits) and Limits.divided (no sockets)."""
import dataclasses
import doctest
import math
import pickle
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchfetch import Fetcher, FetchOptions, Limits, OptionError, RetryPolicy, Timeouts
from batchfetch import _checks, config, policies


def test_the_families_are_built_from_the_fields():
    options = FetchOptions(concurrency=8, per_host=2, rate=1.5, max_pending=50, timeout=30,
                           connect_timeout=2, deadline=None, retries=1, backoff=0,
                           retry_on="503", max_retry_wait=9, throttled_retries=0,
                           retry_non_idempotent=True)
    assert options.limits == Limits(8, 2, 1.5, 50)
    assert options.timeouts == Timeouts(connect=2.0, read=30.0, deadline=None)
    assert options.retry_policy == RetryPolicy(1, 0.0, frozenset({503}), 9.0, 0, True)


def test_the_defaults_are_the_families_defaults():
    options = FetchOptions()
    assert (options.limits, options.timeouts, options.retry_policy) == (
        Limits(), Timeouts(), RetryPolicy())


@pytest.mark.parametrize("keywords, expected", [
    ({"limits": Limits(concurrency=8)}, {"concurrency": 8, "per_host": None, "max_pending": None}),
    ({"timeouts": Timeouts(3, 20, deadline=None)},
     {"timeout": (3.0, 20.0), "connect_timeout": None, "deadline": None}),
    ({"retry_policy": RetryPolicy(retries=0, retry_on=None)},
     {"retries": 0, "retry_on": frozenset(), "backoff": 0.5}),
])
def test_a_family_is_a_keyword_for_its_fields(keywords, expected):
    options = FetchOptions(**keywords)
    assert {name: getattr(options, name) for name in expected} == expected
    assert options == FetchOptions(**expected)


def test_replace_takes_a_family_for_all_its_fields():
    options = FetchOptions(per_host=2, rate=5, timeout=30, connect_timeout=1)
    replaced = options.replace(limits=Limits(concurrency=4), timeouts=Timeouts(read=60))
    assert (replaced.concurrency, replaced.per_host, replaced.rate) == (4, None, None)
    assert replaced.timeout == (10.0, 60.0) and replaced.connect_timeout is None


def test_the_api_takes_the_families_too():
    with Fetcher(limits=Limits(concurrency=3), retries=0) as fetcher:
        assert (fetcher.options.concurrency, fetcher.options.retries) == (3, 0)


@pytest.mark.parametrize("keywords", [
    {"limits": Limits(), "concurrency": 3},
    {"timeouts": Timeouts(), "connect_timeout": 1},
    {"retry_policy": RetryPolicy(), "retry_on": "503"},
])
def test_a_family_and_one_of_its_fields_are_refused(keywords):
    family = next(name for name in keywords if name in ("limits", "timeouts", "retry_policy"))
    with pytest.raises(OptionError, match=rf"^{family}: \w+ is given too") as refused:
        FetchOptions(**keywords)
    assert refused.value.option == family
    with pytest.raises(OptionError, match=rf"^{family}: "):
        FetchOptions().replace(**keywords)


@pytest.mark.parametrize("name, value", [
    ("limits", {"concurrency": 3}), ("limits", None), ("timeouts", 5), ("retry_policy", 3),
])
def test_a_family_that_is_not_one_is_refused(name, value):
    with pytest.raises(OptionError, match=rf"^{name} must be a ") as refused:
        FetchOptions(**{name: value})
    assert refused.value.value is value


@pytest.mark.parametrize("family, name, value", [
    (Limits, "concurrency", 0), (Limits, "per_host", 1.5), (Limits, "rate", -1),
    (Limits, "max_pending", 0), (Timeouts, "connect", -1), (Timeouts, "read", "30"),
    (Timeouts, "deadline", float("inf")), (RetryPolicy, "retries", -1),
    (RetryPolicy, "retry_on", "abc"), (RetryPolicy, "backoff", None),
    (RetryPolicy, "retry_non_idempotent", 1),
])
def test_a_family_checks_its_fields_by_name(family, name, value):
    with pytest.raises(OptionError) as refused:
        family(**{name: value})
    assert refused.value.option == name and refused.value.value is value


def test_families_are_frozen_and_picklable():
    for family in (Limits(rate=2), Timeouts(read=None), RetryPolicy(retry_on="429")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            family.__setattr__(dataclasses.fields(family)[0].name, 1)
        assert pickle.loads(pickle.dumps(family)) == family


def test_divided_keeps_the_numbers_workers_had():
    assert Limits(concurrency=64, per_host=4, rate=9.0, max_pending=30).divided(3) == Limits(
        concurrency=22, per_host=2, rate=3.0, max_pending=10)
    assert Limits().divided(2) == Limits(concurrency=8, max_pending=128)
    assert Limits(concurrency=5).divided(1) == Limits(concurrency=5, max_pending=256)


@pytest.mark.parametrize("n", [0, -2, 1.5, True, None])
def test_divided_takes_a_count(n):
    with pytest.raises(OptionError, match="^n must be an integer >= 1"):
        Limits().divided(n)


@given(concurrency=st.integers(1, 5000), per_host=st.none() | st.integers(1, 500),
       rate=st.none() | st.floats(min_value=0, exclude_min=True, allow_infinity=False),
       max_pending=st.none() | st.integers(1, 100_000), n=st.integers(1, 300))
def test_divided_parts_add_up_to_no_more_than_the_whole(concurrency, per_host, rate,
                                                        max_pending, n):
    whole = Limits(concurrency, per_host, rate, max_pending)
    part = whole.divided(n)
    # rate and max_pending: n parts stay within the whole wherever that is possible.
    if rate is not None:
        assert part.rate * n <= rate or part.rate == math.ulp(0.0)  # 5e-324 halves to 0
        assert part.rate > 0
        if rate / n > sys.float_info.min:  # not subnormal: rounded down by a hair at most
            assert math.isclose(part.rate * n, rate, rel_tol=1e-12)
    if whole.pending_limit >= n:
        assert part.max_pending * n <= whole.pending_limit < (part.max_pending + 1) * n
    else:
        assert part.max_pending == 1
    # The documented exception: concurrency and per_host are rounded up, so that each part
    # may run at least one; less than one each over the whole.
    for name in ("concurrency", "per_host"):
        value, share = getattr(whole, name), getattr(part, name)
        if value is None:
            assert share is None
        else:
            assert share >= 1 and (share - 1) * n < value <= share * n


def test_docstring_examples_run():
    for module in (policies, config, _checks):
        assert doctest.testmod(module).failed == 0, module.__name__
