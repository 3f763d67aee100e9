"""FetchOptions validation and defaults (no sockets)."""
import pickle

import pytest

from batchfetch import FetchOptions, OptionError
from batchfetch.config import DEFAULT_OK_STATUS, parse_status_set


def test_defaults_are_documented_values():
    options = FetchOptions()
    assert options.concurrency == 16
    assert options.timeout == (10.0, 30.0)
    assert options.method == "GET" and options.verify is True
    assert options.ok_status == DEFAULT_OK_STATUS == frozenset(range(100, 400))
    assert options.retry_on == frozenset({429, 500, 502, 503, 504})
    assert (options.retries, options.backoff, options.max_retry_wait) == (3, 0.5, 60.0)
    assert options.deadline == 120.0 and options.max_bytes == "auto"
    assert options.pending_limit == 256 and options.host_limit == 16
    assert options.user_agent.startswith("batchfetch/")


def test_pending_window_grows_with_concurrency():
    assert FetchOptions(concurrency=100).pending_limit == 400
    assert FetchOptions(max_pending=10).pending_limit == 10


def test_options_are_frozen_and_picklable():
    options = FetchOptions(headers={"A": "b"}, ok_status="200-204")
    with pytest.raises(AttributeError):
        options.concurrency = 3
    assert pickle.loads(pickle.dumps(options)) == options


def test_caller_mappings_are_copied():
    headers = {"A": "1"}
    options = FetchOptions(headers=headers)
    headers["A"] = "2"
    assert options.headers == {"A": "1"}


@pytest.mark.parametrize("timeout, connect_timeout, expected", [
    (5, None, (5.0, 5.0)),
    ((3, 20), None, (3.0, 20.0)),
    ([1.5, None], None, (1.5, None)),
    (30, 2, (2.0, 30.0)),
    ((3, 20), 1, (1.0, 20.0)),
])
def test_timeout_forms(timeout, connect_timeout, expected):
    assert FetchOptions(timeout=timeout, connect_timeout=connect_timeout).timeout == expected


@pytest.mark.parametrize("name, value", [
    ("concurrency", 0), ("concurrency", 2.5), ("concurrency", True), ("timeout", -1),
    ("timeout", (1, 2, 3)), ("timeout", "fast"), ("connect_timeout", 0), ("method", "FROB"),
    ("method", 7), ("headers", {"A": 1}), ("headers", ["A"]), ("params", 5),
    ("auth", "user:pw"), ("verify", "/no/such/ca.pem"), ("cert", "/no/such/cert.pem"),
    ("allow_redirects", "yes"), ("max_redirects", -1), ("user_agent", None),
    ("ok_status", "2xx"), ("ok_status", "600"), ("ok_status", "300-200"), ("ok_status", True),
    ("keep_body", 1), ("retries", -1), ("backoff", -0.1), ("retry_on", "abc"),
    ("max_retry_wait", float("nan")), ("deadline", 0), ("max_bytes", -5), ("per_host", 0),
    ("rate", 0), ("max_pending", 0), ("retry_non_idempotent", None), ("proxies", {"http": 1}),
])
def test_bad_values_name_the_option_and_the_value(name, value):
    with pytest.raises(OptionError) as caught:
        FetchOptions(**{name: value})
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.option == name and error.value is value
    assert str(error).startswith(f"{name} must be ") and repr(error.shown_value) in str(error)
    if name != "auth":  # an auth value may hold a password: it is shown masked
        assert error.shown_value is value or error.shown_value == value


def test_json_and_data_together_are_refused():
    with pytest.raises(OptionError, match="data must be unset when json is set"):
        FetchOptions(json={"a": 1}, data="x")


def test_method_is_normalised():
    assert FetchOptions(method="post").method == "POST"


def test_status_sets():
    assert parse_status_set("200-202, 404") == {200, 201, 202, 404}
    assert parse_status_set(404) == {404}
    assert parse_status_set(range(200, 300)) == set(range(200, 300))
    assert parse_status_set([200, "301-302"]) == {200, 301, 302}
    assert FetchOptions(retry_on=()).retry_on == frozenset()


def test_replace_validates():
    options = FetchOptions(concurrency=4)
    assert options.replace(retries=0).retries == 0
    with pytest.raises(OptionError):
        options.replace(concurrency=-1)


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="concurency"):
        FetchOptions(concurency=3)


def test_max_bytes_auto_caps_only_kept_bodies():
    """Issue 13, item 1: kept bodies had no cap by default (a gzip bomb took 14.7 GB)."""
    from batchfetch.config import KEPT_BODY_LIMIT

    assert KEPT_BODY_LIMIT == 10 * 1024 * 1024
    assert FetchOptions().body_limit is None  # counted or saved bodies stream: flat memory
    assert FetchOptions(keep_body=True).body_limit == KEPT_BODY_LIMIT
    assert FetchOptions(keep_body=True, max_bytes=None).body_limit is None
    assert FetchOptions(keep_body=True, max_bytes=100).body_limit == 100
    assert FetchOptions(max_bytes=0).body_limit == 0


@pytest.mark.parametrize("value", ["10M", "none", -1, 1.5, True, [1]])
def test_max_bytes_takes_a_count_auto_or_none(value):
    with pytest.raises(OptionError, match=r"max_bytes must be an integer >= 0, 'auto' or None"):
        FetchOptions(max_bytes=value)


@pytest.mark.parametrize("proxy", ["ftp://127.0.0.1", "http://", "http://127.0.0.1:99999",
                                   "http://u:pw@[::1"])
def test_a_proxy_that_is_no_url_is_an_option_error(proxy):
    """Every row failed as invalid_url instead, each message blaming its own URL."""
    with pytest.raises(OptionError, match=r"^proxies: proxy '") as refused:
        FetchOptions(proxies={"http": proxy})
    assert "pw" not in str(refused.value)
    assert FetchOptions(proxies={"https": "127.0.0.1:3128"}).proxies  # no scheme: http


def test_an_empty_save_dir_is_refused():
    with pytest.raises(OptionError, match="save_dir must be the path of a directory"):
        FetchOptions(save_dir="")
