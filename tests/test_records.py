"""Rows back from records (FetchResult.from_record), and from the files each format's writer
wrote, through the format registry; no sockets."""
import dataclasses
import io

import pytest

from batchfetch import FetchResult, ResultTable
from batchfetch.results import ADDED_COLUMNS, COLUMNS, RECORD_TYPES
from batchfetch.writers import (FORMATS, OUTPUT_FORMATS, format_for_path, output_format,
                                writer_for)

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


# -- through the files the writers write -----------------------------------------------------


def read_back(fmt, rows, include_body=False):
    """Write ``rows`` with the format's writer, then read them back with its reader."""
    out = io.StringIO(newline="")
    writer = writer_for(fmt, out, include_body)
    for row in rows:
        writer.write(row)
    writer.close()
    spec = output_format(fmt)
    records = list(spec.reader.records(io.BytesIO(out.getvalue().encode("utf-8"))))
    columns = writer.columns
    if spec.reader.header:
        assert spec.reader.columns(records.pop(0)[2]) == columns
    return [FetchResult.from_record(spec.reader.record(raw, columns)) for _, _, raw in records]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_each_resumable_format_reads_its_rows_back(fmt):
    assert read_back(fmt, ROWS) == ROWS
    assert read_back(fmt, BODIES, include_body=True) == BODIES


def test_csv_reads_back_formula_like_text_and_empty_cells():
    """Neutralised cells (a leading ') come back as written; an empty cell is the column's
    default: None for status and id, where JSON Lines would say null."""
    row = FetchResult(0, "-http://127.0.0.1/", reason="=cmd", message="'@quoted", id="-5",
                      content_type="")
    assert read_back("csv", [row]) == [row]
    assert read_back("csv", [dataclasses.replace(row, id="7")])[0].id == 7  # CSV cannot tell


def test_csv_reads_back_a_body_over_the_csv_modules_field_limit():
    """Bug: --resume of a CSV written with --body crashed (csv.Error, a traceback) on a body
    over 128 KiB; the reader raises the limit for the record, and puts it back."""
    import csv

    row = dataclasses.replace(TEXT_BODY, body=b"x" * 200_000)
    limit = csv.field_size_limit()
    assert read_back("csv", [row], include_body=True) == [row]
    assert csv.field_size_limit() == limit


def test_a_csv_record_of_the_wrong_width_is_not_a_row():
    reader = OUTPUT_FORMATS["csv"].reader
    with pytest.raises(ValueError, match="2 cells, expected 3"):
        reader.record(b"0,http://127.0.0.1/\r\n", ("index", "url", "ok"))
    with pytest.raises(ValueError, match="'yes' is not true or false"):
        reader.record(b"0,http://127.0.0.1/,yes\r\n", ("index", "url", "ok"))


def test_records_stop_at_the_last_complete_one():
    """What kill -9 leaves: a cut last line, or in CSV a quoted newline the cut left open."""
    csv_reader, jsonl_reader = OUTPUT_FORMATS["csv"].reader, OUTPUT_FORMATS["jsonl"].reader
    data = b'a,b\r\n1,"two\r\nlines"\r\n2,"cut\r\n'
    assert [(line, end) for line, end, _ in csv_reader.records(io.BytesIO(data))] == \
        [(1, 5), (2, 21)]
    assert len(list(jsonl_reader.records(io.BytesIO(b'{"index": 0}\n{"ind')))) == 1


# -- the registry ------------------------------------------------------------------------------


def test_the_registry_declares_every_format_once():
    assert FORMATS == ("table", "csv", "jsonl", "json", "sqlite") == tuple(OUTPUT_FORMATS)
    suffixes = [suffix for spec in OUTPUT_FORMATS.values() for suffix in spec.suffixes]
    assert len(suffixes) == len(set(suffixes))
    for spec in OUTPUT_FORMATS.values():
        assert output_format(spec.name) is spec
        assert all(format_for_path(f"rows{suffix.upper()}") is spec for suffix in spec.suffixes)
        if spec.resumable:
            assert spec.streams and spec.reader is not None


def test_format_for_path_defaults_to_jsonl_and_refuses_unknown_suffixes():
    assert format_for_path("rows").name == "jsonl"
    with pytest.raises(ValueError, match="cannot tell a format from '.xlsx'"):
        format_for_path("out.xlsx")
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        output_format("xml")


def test_a_resumable_format_must_stream_and_read_back():
    with pytest.raises(ValueError, match="resumable"):
        dataclasses.replace(OUTPUT_FORMATS["json"], resumable=True)


@pytest.mark.parametrize("name", [name for name in FORMATS if name != "sqlite"])
def test_result_table_writes_every_format_by_suffix(tmp_path, name):
    """(A store is a path, not a stream: tests/test_store.py.)"""
    table = ResultTable(ROWS)
    path = tmp_path / f"rows{OUTPUT_FORMATS[name].suffixes[0]}"
    table.write(path)
    expected = io.StringIO(newline="")
    table.write(expected, name)
    assert path.read_bytes().decode("utf-8") == expected.getvalue()
    with pytest.raises(ValueError, match="give the format of a file object"):
        table.write(io.StringIO())


def test_to_csv_is_write_with_csv(tmp_path):
    table = ResultTable(BODIES)
    table.to_csv(tmp_path / "a.csv")
    table.write(tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
