"""The one exception-to-kind mapping, fed the exceptions requests and urllib3 really raise.

These are constructed, not provoked, where provoking them would need the outside
world (a DNS lookup of a name that does not exist); end-to-end faults are in test_fetch.
"""
import http.client
import socket

import pytest
import requests.exceptions as rex
import urllib3.exceptions as u3
from urllib3.connection import HTTPConnection

from batchfetch import ERROR_KINDS
from batchfetch.errors import BodyTooLargeError, DeadlineExceeded, SaveError, classify


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
    assert classify(exception)[0] == kind
    assert kind in ERROR_KINDS


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
