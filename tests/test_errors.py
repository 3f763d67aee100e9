"""The error kinds (ErrorKind) and the one exception-to-kind mapping, fed the exceptions
requests and urllib3 really raise.

These are constructed, not provoked, where provoking them would need the outside
world (a DNS lookup of a name that does not exist); end-to-end faults are in test_fetch.
No sockets here.
"""
import csv
import http.client
import io
import json
import pickle
import random
import socket
import ssl

import pytest
import requests.exceptions as rex
import urllib3.exceptions as u3
from urllib3.connection import HTTPConnection

from batchfetch import ERROR_KINDS, ErrorKind, FetchOptions, FetchResult
from batchfetch.errors import (BodyTooLargeError, DeadlineExceeded, InvalidItemError,
                               RedirectLocationError, RobotsDisallowedError, SaveError, classify)
from batchfetch.scheduling.retry import NEVER_SENT_ERRORS, decide
from batchfetch.transport.attempt import Outcome
from batchfetch.writers import writer_for


def _wrapped(reason):
    """The shape requests gives connection failures: ConnectionError(MaxRetryError(reason))."""
    pool_error = u3.MaxRetryError(None, "/", reason)
    return rex.ConnectionError(pool_error)


def test_failed_name_lookup_is_dns():
    """urllib3 raises NameResolutionError for a failed getaddrinfo."""
    conn = HTTPConnection("no-such-host.invalid")
    reason = u3.NameResolutionError("no-such-host.invalid", conn,
                                    socket.gaierror(-2, "Name or service not known"))
    kind, message = classify(_wrapped(reason))
    assert kind == "dns"
    assert "Name or service not known" in message or "no-such-host" in message


@pytest.mark.parametrize("exception, kind", [
    (rex.ConnectTimeout("x"), "connect_timeout"),
    (_wrapped(u3.NewConnectionError(HTTPConnection("h"), "refused")), "connect"),
    (rex.ReadTimeout("x"), "timeout"),
    (rex.ConnectionError(u3.ReadTimeoutError(None, "/", "read timed out")), "timeout"),
    (rex.SSLError("x"), "tls"),
    (rex.ConnectionError(u3.ProtocolError("aborted", ConnectionResetError(104, "reset"))),
     "reset"),
    (rex.ConnectionError(u3.ProtocolError("aborted", http.client.RemoteDisconnected("x"))),
     "reset"),
    (rex.ChunkedEncodingError(u3.ProtocolError("broken", u3.IncompleteRead(10, 90))),
     "truncated"),
    (rex.ConnectionError(u3.ProtocolError("aborted", http.client.BadStatusLine("x"))),
     "protocol"),
    (rex.ContentDecodingError("bad gzip"), "protocol"),
    (rex.TooManyRedirects("x"), "too_many_redirects"),
    (rex.InvalidURL("x"), "invalid_url"),
    (rex.MissingSchema("x"), "invalid_url"),
    (DeadlineExceeded(2.0), "deadline"),
    (rex.ConnectionError(DeadlineExceeded(2.0)), "deadline"),
    (BodyTooLargeError(10), "too_large"),
    (SaveError("/d/f", OSError(28, "No space left on device")), "save"),
    (RuntimeError("bug"), "protocol"),
])
def test_exceptions_map_to_documented_kinds(exception, kind):
    assert classify(exception)[0] is ErrorKind(kind)
    assert kind in ERROR_KINDS


@pytest.mark.parametrize("exception, kind", [
    (_wrapped(u3.ConnectTimeoutError(HTTPConnection("h"), "timed out")),
     ErrorKind.CONNECT_TIMEOUT),
    (_wrapped(u3.NewConnectionError(HTTPConnection("h"), ConnectionRefusedError(111, "no"))),
     ErrorKind.CONNECT),
    (OSError(101, "Network is unreachable"), ErrorKind.CONNECT),
    (rex.SSLError(u3.SSLError(ssl.SSLCertVerificationError(1, "certificate verify failed"))),
     ErrorKind.TLS),
    (rex.ConnectionError(u3.ProtocolError("aborted", BrokenPipeError(32, "pipe"))),
     ErrorKind.RESET),
    (rex.ConnectionError(u3.ProtocolError("aborted", socket.timeout("timed out"))),
     ErrorKind.TIMEOUT),
    (rex.ChunkedEncodingError(u3.ProtocolError("short", http.client.IncompleteRead(b"", 9))),
     ErrorKind.TRUNCATED),
    (rex.InvalidSchema("ftp"), ErrorKind.INVALID_URL),
    (u3.LocationParseError("http://[::1"), ErrorKind.INVALID_URL),
    (RedirectLocationError("ftp://h/", "not http"), ErrorKind.INVALID_URL),
    (InvalidItemError("invalid_request", "no url"), ErrorKind.INVALID_REQUEST),
    (RobotsDisallowedError("http://h/a", "http://h/robots.txt", "disallowed"),
     ErrorKind.ROBOTS),
    (rex.ConnectionError(BodyTooLargeError(10)), ErrorKind.TOO_LARGE),
])
def test_classify_gives_an_error_kind_member(exception, kind):
    """Issue 15: classify() is the one mapping, and what it gives is an ErrorKind."""
    got, message = classify(exception)
    assert got is kind and type(got) is ErrorKind
    assert message and isinstance(message, str)


def test_error_kinds_are_the_strings_rows_carry():
    """Issue 15: the enum changed no string: values, order and meanings are ERROR_KINDS'."""
    assert [kind.value for kind in ErrorKind] == list(ERROR_KINDS)
    assert ERROR_KINDS == {kind.value: kind.meaning for kind in ErrorKind}
    assert all(type(key) is str for key in ERROR_KINDS)
    assert ErrorKind.TIMEOUT == "timeout" and "timeout" == ErrorKind.TIMEOUT
    assert {ErrorKind.HTTP: 1} == {"http": 1}
    for kind in ErrorKind:
        assert str(kind) == f"{kind}" == kind.value == kind.name.lower()


def test_error_kinds_round_trip_from_their_strings():
    assert ErrorKind("timeout") is ErrorKind.TIMEOUT
    for kind in ErrorKind:
        assert ErrorKind(kind.value) is kind
        assert pickle.loads(pickle.dumps(kind)) is kind
    with pytest.raises(ValueError):
        ErrorKind("time_out")


def test_a_misspelt_kind_cannot_make_an_input_error():
    """Issue 15: a typo raises at once instead of making a new kind."""
    with pytest.raises(ValueError):
        InvalidItemError("invalid_ulr", "no scheme")
    error = pickle.loads(pickle.dumps(InvalidItemError("invalid_url", "no scheme")))
    assert error.kind is ErrorKind.INVALID_URL
    assert str(error) == "invalid_url: no scheme"


def test_rows_hold_the_bare_string_in_json_and_csv():
    """Issue 15: a row built from a member holds the plain string; files are unchanged."""
    row = FetchResult(0, "http://127.0.0.1/", error=ErrorKind.TIMEOUT, message="read timed out")
    assert type(row.error) is str and row.error == "timeout"
    assert "error='timeout'" in repr(row)
    assert json.dumps(ErrorKind.TIMEOUT) == '"timeout"'
    assert json.loads(json.dumps(row.to_record()))["error"] == "timeout"
    assert '"error": "timeout"' in json.dumps(row.to_record())
    out = io.StringIO()
    writer = writer_for("csv", out)
    writer.write(row)
    writer.close()
    assert next(csv.DictReader(io.StringIO(out.getvalue())))["error"] == "timeout"
    out = io.StringIO()
    csv.writer(out).writerow([ErrorKind.TIMEOUT])
    assert out.getvalue() == "timeout\r\n"


def test_every_kind_says_what_it_means_and_how_it_is_retried():
    for kind in ErrorKind:
        assert kind.meaning and kind.retried and type(kind.maybe_sent) is bool


def _retried(kind, method, reused=False, status=None, retry_after=None):
    """Whether the retry policy tries again after one attempt that failed with ``kind``."""
    outcome = Outcome(status=status, error="" if kind is ErrorKind.HTTP else kind,
                      retry_after=retry_after)
    return decide(FetchOptions(), method, outcome, 1, reused, 0.0, random.Random(0)).retry


@pytest.mark.parametrize("kind", [kind for kind in ErrorKind if kind is not ErrorKind.HTTP])
def test_retried_says_what_the_retry_policy_does(kind):
    """Issue 15: ErrorKind.retried is what scheduling.retry.decide does, not a wish."""
    tried = (_retried(kind, "GET"), _retried(kind, "GET", reused=True),
             _retried(kind, "POST"), _retried(kind, "POST", reused=True))
    expected = {"yes": (True, True, True, True), "no": (False, False, False, False),
                "idempotent methods only": (True, True, False, False),
                "idempotent methods; any before an answer on a reused connection":
                    (True, True, False, True)}[kind.retried]
    assert tried == expected


def test_retried_says_what_the_retry_policy_does_for_statuses():
    assert ErrorKind.HTTP.retried == "retry_on statuses; non-idempotent: 429/503 with Retry-After"
    assert _retried(ErrorKind.HTTP, "GET", status=503)
    assert not _retried(ErrorKind.HTTP, "GET", status=404)
    assert not _retried(ErrorKind.HTTP, "POST", status=503)
    assert _retried(ErrorKind.HTTP, "POST", status=503, retry_after="1")
    assert _retried(ErrorKind.HTTP, "POST", status=429, retry_after="1")
    assert not _retried(ErrorKind.HTTP, "POST", status=500, retry_after="1")


def test_kinds_retried_for_any_method_were_never_sent():
    """A POST is sent again after these kinds only because the server never saw it."""
    assert NEVER_SENT_ERRORS == {kind for kind in ErrorKind if kind.retried == "yes"}
    assert not any(kind.maybe_sent for kind in NEVER_SENT_ERRORS)
    assert [kind.value for kind in ErrorKind if not kind.maybe_sent] == [
        "invalid_url", "invalid_request", "dns", "connect", "connect_timeout", "robots"]


def test_timeout_messages_leave_out_pool_reprs():
    connection = HTTPConnection("127.0.0.1")
    reason = u3.ConnectTimeoutError(connection, "Connection to 127.0.0.1 timed out. "
                                                "(connect timeout=1)")
    wrapped = rex.ConnectTimeout(u3.MaxRetryError(None, "/x", reason))
    assert classify(wrapped) == ("connect_timeout",
                                 "Connection to 127.0.0.1 timed out. (connect timeout=1)")
    read = rex.ReadTimeout(u3.ReadTimeoutError(None, "/x", "Read timed out. (read timeout=1)"))
    assert classify(read) == ("timeout", "Read timed out. (read timeout=1)")


def test_messages_are_short_and_name_the_cause():
    kind, message = classify(DeadlineExceeded(2.5))
    assert (kind, message) == ("deadline", "attempt exceeded the 2.5 s deadline")
    _, long_message = classify(rex.RequestException("x" * 1000))
    assert len(long_message) <= 300


def test_save_errors_travel_pickled_and_say_what_failed():
    """Worker processes send rows' exceptions pickled to the parent."""
    import pickle

    error = pickle.loads(pickle.dumps(SaveError("/d/f", OSError(28, "No space left on device"))))
    assert (error.path, error.errno, error.filename) == ("/d/f", 28, "/d/f")
    assert classify(error) == ("save", "cannot save the body to /d/f: No space left on device")
