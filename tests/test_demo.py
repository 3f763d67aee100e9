"""``batchfetch --demo``: the offline demo runs the real code path and checks every row."""
import csv
import io

from click.testing import CliRunner

from batchfetch import ERROR_KINDS
from batchfetch.cli import main
from batchfetch.cli.demo import DEMO_OPTIONS, demo_cases
from batchfetch.testing import LoopbackServer


def invoke(*args):
    return CliRunner().invoke(main, list(args), prog_name="batchfetch")


def test_demo_prints_the_table_and_summary_and_exits_0():
    result = invoke("--demo")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["#", "status", "error", "ms", "bytes", "tries", "url",
                                "message"]
    assert [line.split()[2] for line in lines[1:]] == [
        "ok", "ok", "ok", "ok", "ok", "ok", "ok", "http", "http", "deadline", "connect",
        "invalid_url"]
    assert "12 fetched: 7 ok, 5 failed" in result.stderr
    assert "latency: p50" in result.stderr
    assert result.stderr.splitlines()[-1] == "demo: all 12 rows as expected"


def test_demo_takes_other_flags_and_reports_rows_that_differ():
    """--retries 0 --throttled-retries 0 leave the flaky endpoint and the 429 failing: exit 1,
    each one named (429s do not count against --retries: --throttled-retries caps them).

    --deadline 2: with no retries, the demo's 0.5 s deadline was an upper bound on every
    case meant to succeed (the trickle, 4 s long, is still cut)."""
    result = invoke("--demo", "-f", "csv", "--retries", "0", "--throttled-retries", "0",
                    "--deadline", "2")
    assert result.exit_code == 1, result.output
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(result.stdout))}
    assert len(rows) == 12
    assert (rows["flaky-503-twice"]["status"], rows["flaky-503-twice"]["attempts"]) == ("503",
                                                                                          "1")
    assert "demo: 2 unexpected:" in result.stderr
    assert "row 3 (flaky-503-twice): expected ok, got http 503 Service Unavailable" \
        in result.stderr
    assert "row 4 (429-retry-after-1s): expected ok, got http 429 Too Many Requests" \
        in result.stderr


def test_demo_cases_expect_known_outcomes():
    with LoopbackServer() as server:
        cases = demo_cases(server)
    assert {case.expect for case in cases} <= {"ok"} | set(ERROR_KINDS)
    assert len({case.id for case in cases}) == len(cases)
    assert DEMO_OPTIONS["deadline"] < 1 and DEMO_OPTIONS["max_retry_wait"] >= 1  # Retry-After 1
