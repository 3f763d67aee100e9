"""CSV cells a spreadsheet would run as formulas are neutralised, and read back exactly
(issue 13, item 4); JSON Lines and JSON keep every text as it is."""
import csv
import io
import json

import pytest
from click.testing import CliRunner
from head_server import HeadServer, response

from batchfetch import FetchResult, ResultTable
from batchfetch.cli import main
from batchfetch.writers import neutralize_cell, restore_cell

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# Text a spreadsheet would take for formulas, in what a server controls.
REASON, CONTENT_TYPE, BODY = "=HYPERLINK(\"http://evil.example\")", "@SUM(1+1)", b"+1-2"


def formula_server():
    return HeadServer(lambda line, headers: response(f"200 {REASON}", BODY,
                                                     [("Content-Type", CONTENT_TYPE)]))


def invoke(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args], prog_name="batchfetch")


def cells_of(text):
    return list(csv.reader(io.StringIO(text, newline="")))


def test_server_text_cannot_become_a_formula_in_csv(tmp_path):
    urls = tmp_path / "urls.txt"
    with formula_server() as server:
        url = server.url("/")
        urls.write_text(f"{url}\n-{url}\n")
        result = invoke("-q", "-r", "0", "--body", "-f", "csv", urls)
        as_jsonl = invoke("-q", "-r", "0", "--body", "-f", "jsonl", urls)
    rows = cells_of(result.stdout)
    records = [dict(zip(rows[0], row)) for row in rows[1:]]
    for record in records:
        for name, cell in record.items():
            assert not cell.startswith(FORMULA_STARTS), (name, cell)
    fetched, bad_line = sorted(records, key=lambda record: record["index"])
    assert (fetched["reason"], fetched["content_type"], fetched["body"]) == (
        "'" + REASON, "'" + CONTENT_TYPE, "'+1-2")
    assert bad_line["url"] == f"'-{url}" and bad_line["error"] == "invalid_url"
    untouched = {row["index"]: row for row in map(json.loads, as_jsonl.stdout.splitlines())}
    assert untouched[0]["reason"] == REASON and untouched[0]["body"] == "+1-2"
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
