"""ResultTable, Summary and the writers, parsed back with the csv and json modules."""
import csv
import io
import json

import pytest

from batchfetch import FetchFailedError, FetchResult, ResultTable
from batchfetch.results import COLUMNS
from batchfetch.writers import writer_for

ROWS = [
    FetchResult(index=2, url="http://127.0.0.1/c", ok=False, status=None, elapsed=0.5,
                attempts=2, error="timeout", message="read timed out", id={"k": [1]}),
    FetchResult(index=0, url="http://127.0.0.1/a", ok=True, status=200, reason="OK",
                elapsed=0.1, size=5, attempts=1, final_url="http://127.0.0.1/a",
                content_type="text/plain", id=7, body=b"hello"),
    FetchResult(index=1, url="http://127.0.0.1/b, \"quoted\"", ok=False, status=404,
                reason="Not Found", elapsed=0.2, size=9, attempts=1, error="http",
                message="404 Not Found", body=b"\xff\x00"),
]


def oks_and_fails(table):
    return len(table.succeeded), len(table.failed)



@pytest.fixture
def table():
    return ResultTable(ROWS, wall_time=2.0)


def test_rows_are_in_input_order(table):
    assert [row.index for row in table] == [0, 1, 2]
    assert [row.index for row in table.succeeded] == [0]
    assert [row.index for row in table.failed] == [1, 2]
    assert table[0].url.endswith("/a") and len(table[1:]) == 2
    assert oks_and_fails(table) == (1, 2)


def test_summary_counts_and_latency(table):
    summary = table.summary()
    assert (summary.total, summary.ok, summary.failed, summary.retries) == (3, 1, 2, 1)
    assert summary.by_status == {"200": 1, "404": 1, "none": 1}
    assert summary.by_error == {"http": 1, "timeout": 1}
    assert (summary.latency_p50, summary.latency_p90, summary.latency_p99) == (0.2, 0.5, 0.5)
    assert summary.requests_per_second == 1.5
    text = str(summary)
    assert "3 fetched: 1 ok, 2 failed, 1 retries" in text
    assert "p50 200 ms" in text and "1.5 req/s" in text


def test_csv_parses_back(table):
    out = io.StringIO()
    table.to_csv(out)
    out.seek(0)
    records = list(csv.DictReader(out))
    assert list(records[0]) == list(COLUMNS) + ["body", "body_encoding"]
    assert [r["index"] for r in records] == ["0", "1", "2"]
    assert records[1]["url"] == "http://127.0.0.1/b, \"quoted\""
    assert records[0]["ok"] == "true" and records[2]["status"] == ""
    assert records[2]["id"] == '{"k": [1]}' and records[0]["body"] == "hello"
    assert records[1]["body_encoding"] == "base64" and records[1]["body"] == "/wA="


def test_jsonl_and_json_parse_back(table, tmp_path):
    table.to_jsonl(tmp_path / "rows.jsonl")
    lines = (tmp_path / "rows.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["index"] for r in records] == [0, 1, 2]
    assert records[2]["status"] is None and records[2]["id"] == {"k": [1]}
    assert records[0]["body"] == "hello" and records[0]["body_encoding"] == "utf-8"
    table.to_json(tmp_path / "rows.json")
    assert json.loads((tmp_path / "rows.json").read_text()) == records
    assert table.to_records() == records


def test_bodies_are_left_out_when_no_row_kept_one():
    table = ResultTable([FetchResult(index=0, url="http://127.0.0.1/", ok=True, status=200)])
    assert "body" not in table.to_records()[0]
    out = io.StringIO()
    table.to_json(out)
    assert "body" not in json.loads(out.getvalue())[0]


def test_empty_json_document_is_valid():
    out = io.StringIO()
    ResultTable([]).to_json(out)
    assert json.loads(out.getvalue()) == []


def test_text_rendering(table):
    lines = str(table).splitlines()
    assert lines[0].split() == ["#", "status", "error", "ms", "bytes", "tries", "url",
                                "message"]
    assert lines[1].split()[:6] == ["0", "200", "ok", "100", "5", "1"]
    assert lines[3].split()[:3] == ["2", "-", "timeout"]
    assert lines[3].endswith("read timed out")  # why it failed


def test_raise_for_errors(table):
    with pytest.raises(FetchFailedError) as caught:
        table.raise_for_errors()
    assert [row.index for row in caught.value.failed] == [1, 2]
    assert "2 of the fetches failed" in str(caught.value)
    ok = ResultTable([ROWS[1]])
    assert ok.raise_for_errors() is ok


def test_streaming_writer_flushes_each_row():
    out = io.StringIO()
    writer = writer_for("csv", out)
    writer.write(ROWS[1])
    assert out.getvalue().count("\n") == 2  # header and the row, before close()
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        writer_for("xml", out)


def test_to_pandas_when_installed(table):
    pandas = pytest.importorskip("pandas")
    frame = table.to_pandas()
    assert isinstance(frame, pandas.DataFrame) and list(frame["index"]) == [0, 1, 2]
