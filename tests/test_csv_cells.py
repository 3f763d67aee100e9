"""CSV cells a spreadsheet would run as formulas are neutralised, and read back exactly
(issue 13, item 4); JSON Lines and JSON keep every text as it is."""
import csv
import io
import json

import gevent.server
import pytest
from click.testing import CliRunner

from batchfetch import FetchResult, ResultTable
from batchfetch.cli import main
from batchfetch.writers import neutralize_cell, restore_cell

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _FormulaServer:
    """Answers every request with a status reason, a Content-Type and a body that a
    spreadsheet would take for formulas."""

    reason, content_type, body = "=HYPERLINK(\"http://evil.example\")", "@SUM(1+1)", b"+1-2"

    def __init__(self):
        self.server = gevent.server.StreamServer(("127.0.0.1", 0), self._serve)

    def _serve(self, sock, address):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return
            data += chunk
        sock.sendall(f"HTTP/1.1 200 {self.reason}\r\nContent-Type: {self.content_type}\r\n"
                     f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n"
                     .encode() + self.body)
        sock.close()

    def __enter__(self):
        self.server.start()
        return f"http://127.0.0.1:{self.server.server_port}/"

    def __exit__(self, *exc):
        self.server.stop()


def invoke(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args], prog_name="batchfetch")


def cells_of(text):
    return list(csv.reader(io.StringIO(text, newline="")))


def test_server_text_cannot_become_a_formula_in_csv(tmp_path):
    urls = tmp_path / "urls.txt"
    with _FormulaServer() as url:
        urls.write_text(f"{url}\n-{url}\n")
        result = invoke("-q", "-r", "0", "--body", "-f", "csv", urls)
        as_jsonl = invoke("-q", "-r", "0", "--body", "-f", "jsonl", urls)
    rows = cells_of(result.stdout)
    header, records = rows[0], [dict(zip(rows[0], row)) for row in rows[1:]]
    for record in records:
        for name, cell in record.items():
            assert not cell.startswith(FORMULA_STARTS), (name, cell)
    fetched, bad_line = sorted(records, key=lambda record: record["index"])
    assert (fetched["reason"], fetched["content_type"], fetched["body"]) == (
        "'" + _FormulaServer.reason, "'" + _FormulaServer.content_type, "'+1-2")
    assert bad_line["url"] == f"'-{url}" and bad_line["error"] == "invalid_url"
    untouched = {row["index"]: row for row in map(json.loads, as_jsonl.stdout.splitlines())}
    assert untouched[0]["reason"] == _FormulaServer.reason and untouched[0]["body"] == "+1-2"
    assert untouched[1]["url"] == f"-{url}"


def test_resume_reads_neutralised_cells_back_exactly(server, tmp_path):
    """A CSV row's url is compared with its input: '-http://...' must read back as written."""
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{server.url('/ok')}\n-{server.url('/ok')}\n=1+1\n'=quoted\n")
    rows = tmp_path / "rows.csv"
    first = invoke("-q", "-r", "0", "-o", rows, urls)
    assert first.exit_code == 1, first.output
    resumed = invoke("-r", "0", "--resume", "-o", rows, urls)
    assert resumed.exit_code == 1, resumed.output  # three invalid lines stay failed rows
    assert "resume: 4 rows already in" in resumed.stderr and "0 fetched" in resumed.stderr
    urls_shown = {int(row[0]): row[2] for row in cells_of(rows.read_text())[1:]}
    assert urls_shown == {0: server.url("/ok"), 1: f"'-{server.url('/ok')}", 2: "'=1+1",
                          3: "''=quoted"}


def test_table_to_csv_neutralises_ids_and_messages_too(tmp_path):
    table = ResultTable([FetchResult(0, "http://127.0.0.1/", id="@me", message="-1 left",
                                     reason="\tOK")])
    path = tmp_path / "rows.csv"
    table.to_csv(path)
    header, row = cells_of(path.read_text())
    record = dict(zip(header, row))
    assert (record["id"], record["message"], record["reason"]) == ("'@me", "'-1 left", "'\tOK")
    assert record["index"] == "0" and record["elapsed"] == "0.0"  # numbers stay numbers


@pytest.mark.parametrize("text", ["", "ok", "=1", "'=1", "''=1", "'ok", "-", "@", "\t\t", "\r",
                                  "'", "''", "'-'", "a=b", " =1"])
def test_every_text_reads_back_exactly(text):
    cell = neutralize_cell(text)
    assert not cell.startswith(FORMULA_STARTS)
    assert restore_cell(cell) == text
