"""Rows back from records (FetchResult.from_record); no sockets."""
import dataclasses

import pytest

from batchfetch import FetchResult
from batchfetch.results import ADDED_COLUMNS, COLUMNS, RECORD_TYPES

OK = FetchResult(index=0, url="http://127.0.0.1/a", ok=True, status=200, reason="OK",
                 elapsed=0.125, size=5, attempts=2, final_url="http://127.0.0.1/b",
                 content_type="text/plain", method="POST", id=7, path="/tmp/x",
                 waited=0.25, wait_reason="retry-after", throttled=1)
FAILED = FetchResult(index=3, url="http://127.0.0.1/c", status=None, elapsed=0.5, attempts=3,
                     error="timeout", message="read timed out", id={"k": [1, "two"]})
INVALID = FetchResult(index=4, url="not a url", error="invalid_url",
                      message="line 5: no scheme in 'not a url'")
TEXT_BODY = dataclasses.replace(OK, index=1, body="héllo\r\n=1+1".encode())
BINARY_BODY = dataclasses.replace(FAILED, index=2, status=500, error="http", body=b"\xff\x00")
EMPTY_BODY = dataclasses.replace(OK, index=5, body=b"")
ROWS = [OK, FAILED, INVALID]
BODIES = [TEXT_BODY, BINARY_BODY, EMPTY_BODY, dataclasses.replace(OK, index=6)]


@pytest.mark.parametrize("row", ROWS, ids=["ok", "failed", "invalid"])
def test_from_record_inverts_to_record(row):
    assert FetchResult.from_record(row.to_record()) == row


@pytest.mark.parametrize("row", BODIES, ids=["utf-8", "base64", "empty", "none"])
def test_from_record_decodes_bodies(row):
    record = row.to_record(include_body=True)
    assert FetchResult.from_record(record) == row
    assert FetchResult.from_record(row.to_record()).body is None  # without body columns


def test_from_record_reads_a_record_of_a_file_older_than_the_added_columns():
    record = {name: value for name, value in OK.to_record().items()
              if name not in ADDED_COLUMNS}
    row = FetchResult.from_record(record)
    assert row == dataclasses.replace(OK, waited=0.0, wait_reason="", throttled=0)


def test_from_record_needs_index_url_and_ok_and_ignores_other_keys():
    row = FetchResult.from_record({"index": 2, "url": "http://127.0.0.1/", "ok": False,
                                   "note": "not a column"})
    assert row == FetchResult(2, "http://127.0.0.1/")
    with pytest.raises(ValueError, match="no ok column"):
        FetchResult.from_record({"index": 0, "url": "http://127.0.0.1/"})


@pytest.mark.parametrize("change, message", [
    ({"index": "0"}, "index is '0', not int"),
    ({"ok": 1}, "ok is 1, not bool"),
    ({"status": True}, "status is True, not int or None"),
    ({"elapsed": "fast"}, "elapsed is 'fast', not float or int"),
    ({"body": "/wA=", "body_encoding": "rot13"}, "body_encoding is 'rot13'"),
    ({"body": "not base64!", "body_encoding": "base64"}, "base64"),
    ({"body": "text"}, "a body without a body_encoding"),
])
def test_from_record_names_what_is_wrong(change, message):
    with pytest.raises(ValueError, match=message):
        FetchResult.from_record({**OK.to_record(), **change})


def test_record_types_cover_every_column():
    assert list(RECORD_TYPES) == list(COLUMNS) + ["body", "body_encoding"]
    assert RECORD_TYPES["status"] == (int, type(None)) and RECORD_TYPES["id"] == (object,)
