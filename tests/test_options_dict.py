"""FetchOptions.to_dict / from_dict: JSON round trips and the options that cannot travel
(no sockets)."""
import dataclasses
import decimal
import doctest
import json
import re

import pytest
from requests.auth import HTTPBasicAuth

from batchfetch import FetchOptions, HostRule, HostRules, OptionError, _options_json


def through_json(options: FetchOptions) -> FetchOptions:
    return FetchOptions.from_dict(json.loads(json.dumps(options.to_dict(), allow_nan=False)))


@pytest.fixture
def every_option_set(tmp_path, monkeypatch):
    """Every option at a value other than its default that JSON can carry."""
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("not read here")
    monkeypatch.setenv("API_KEY", "k3y")
    return FetchOptions(
        concurrency=7, timeout=(2.5, None), connect_timeout=1.5, method="PUT",
        headers={"X-Tag": "a", "X-Raw": b"\xc3\xa9"}, params=(("q", "x"), ("n", 1)),
        data=None, json={"ids": [1, (2, 3)], "nested": {"ok": True, "none": None}},
        auth=("ann", "s3cret"), cookies={"sid": "1"}, verify=str(tmp_path / "ca.pem"),
        cert=(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")),
        proxies={"http": "http://127.0.0.1:3128", "no_proxy": "localhost"},
        allow_redirects=False, max_redirects=3, user_agent="probe/1", ok_status="200-299,404",
        keep_body=True, hash_body=True, response_headers=True,
        header_columns=("X-Request-Id", "Retry-After"),
        save_dir=str(tmp_path / "bodies"), since=str(tmp_path / "before.jsonl"),
        changed_only=True, retries=5, backoff=0.0,
        retry_on="503", max_retry_wait=5.0, throttled_retries=2, retry_non_idempotent=True,
        deadline=None, max_bytes=1000, per_host=2, rate=3.5, fast_path=False, robots=True,
        adaptive=True, polite=True, workers=3, max_pending=40, chunk_size=50, lease=5.0,
        chunk_time_limit=60.0,
        hosts={"api.example.com": {"concurrency": 2, "timeout": [3, 20],
                                   "headers": {"X-Api-Key": {"env": "API_KEY"}, "A": "b"},
                                   "auth": {"bearer": "t0ken"}},
               "*.cdn.example:8080": {"proxy": False, "rate": 0.5, "retries": 0,
                                      "connect_timeout": 1,
                                      "auth": {"user": "u", "password": "p"}},
               "*": {"proxy": "http://127.0.0.1:3128"}})


def test_defaults_travel():
    data = FetchOptions().to_dict()
    assert list(data) == FetchOptions.field_names()
    assert through_json(FetchOptions()) == FetchOptions()
    assert data["timeout"] == [10.0, 30.0] and data["ok_status"] == ["100-399"]
    assert data["retry_on"] == ["429", "500", "502-504"] and data["hosts"] is None


def test_every_option_travels(every_option_set):
    options = every_option_set
    for field in dataclasses.fields(FetchOptions):  # a new option must be added above
        # data and files exclude json, broker excludes workers: they travel below.
        assert getattr(options, field.name) != field.default or \
            field.name in ("data", "files", "broker"), field.name
    back = through_json(options)
    assert back == options
    assert back.hosts.for_host("api.example.com").hidden_headers == {"X-Api-Key"}
    assert "k3y" not in repr(back.hosts.for_host("api.example.com"))


def test_multipart_parts_travel(tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text("x")
    options = FetchOptions(data={"a": "1"}, files={
        "note": "hi", "doc": {"path": str(doc), "type": "text/plain", "filename": "d.txt"}})
    assert through_json(options) == options


def test_bytes_are_marked_base64():
    options = FetchOptions(data=b"\x00hi", headers={"X-Raw": b"\xff"})
    data = options.to_dict()
    assert data["data"] == {"$base64": "AGhp"}
    assert data["headers"] == {"X-Raw": {"$base64": "/w=="}}
    assert through_json(options) == options


def test_pairs_are_lists_and_other_tuples_are_marked():
    options = FetchOptions(auth=("ann", "pw"), params=[("a", "1"), ["b", "2"]],
                           data=(("f", "v"),))
    data = options.to_dict()
    assert data["auth"] == ["ann", "pw"]
    assert data["params"] == [{"$tuple": ["a", "1"]}, ["b", "2"]]
    assert data["data"] == {"$tuple": [{"$tuple": ["f", "v"]}]}
    back = through_json(options)
    assert back == options and back.auth == ("ann", "pw")
    assert back.params == [("a", "1"), ["b", "2"]] and back.data == (("f", "v"),)


def test_from_dict_takes_a_part_and_checks_it():
    assert FetchOptions.from_dict({"retries": 0, "timeout": [1, 2]}) == FetchOptions(
        retries=0, timeout=(1, 2))
    with pytest.raises(OptionError, match="^concurrency must be an integer >= 1"):
        FetchOptions.from_dict({"concurrency": 0})


@pytest.mark.parametrize("data, option, message", [
    ({"concurency": 3}, "concurency", "not an option of FetchOptions"),
    ({"data": {"$base64": "not base64!"}}, "data", "must be base64 text"),
    ({"json": {"$tuple": "ab"}}, "json", 'must be a list under "$tuple"'),
    ({"hosts": {"source": "x"}}, "hosts", 'must be a mapping with "patterns"'),
    ([("retries", 1)], "options", "must be a mapping"),
])
def test_from_dict_names_what_does_not_read_back(data, option, message):
    with pytest.raises(OptionError, match=re.escape(message)) as refused:
        FetchOptions.from_dict(data)
    assert refused.value.option == option


@pytest.mark.parametrize("keywords, option, problem", [
    ({"auth": HTTPBasicAuth("ann", "pw")}, "auth", "not a HTTPBasicAuth"),
    ({"json": {"when": object()}}, "json", "a object has no JSON form"),
    ({"json": {"ids": {1, 2}}}, "json", "a set has no JSON form"),
    ({"json": {1: "one"}}, "json", "the key 1 is not a string"),
    ({"json": [float("nan")]}, "json", "nan is no JSON number"),
    ({"params": {"at": decimal.Decimal("1.5")}}, "params", "a Decimal has no JSON form"),
    ({"data": {"$base64": "x"}}, "data", "would read back as bytes or a tuple"),
    ({"hosts": HostRules((HostRule("a.test", rate=decimal.Decimal(2)),))}, "hosts",
     "a Decimal has no JSON form"),
    ({"hosts": HostRules((HostRule("a.test", headers={"A": b"x"}),))}, "hosts",
     "a bytes has no JSON form"),
    ({"hosts": HostRules((HostRule("a.test", proxy="ftp://p"),))}, "hosts",
     "cannot travel as JSON: hosts: "),
])
def test_an_option_that_cannot_travel_is_named(keywords, option, problem):
    options = FetchOptions(**keywords)
    with pytest.raises(OptionError) as refused:
        options.to_dict()
    assert refused.value.option == option
    assert str(refused.value).startswith(f"{option}: cannot travel as JSON")
    assert problem in str(refused.value)
    assert "pw" not in str(refused.value)


def test_docstring_examples_run():
    assert doctest.testmod(_options_json).failed == 0


def test_the_broker_travels():
    options = FetchOptions(broker="redis://:pw@127.0.0.1:6379/2", chunk_size=9)
    assert through_json(options) == options
    assert "pw" not in repr(options)
    with pytest.raises(ValueError, match="give the password in the URL's user info"):
        FetchOptions(broker="redis://127.0.0.1:6379/0?password=pw")
