"""Every example runs offline; the example input files parse and work with the CLI."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchfetch import FetchOptions
from batchfetch.cli.lines import NumberedItems
from batchfetch.cli import main
from batchfetch.inputs import to_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("script", sorted(EXAMPLES.glob("*.py")), ids=lambda path: path.name)
def test_example_script_runs_offline(script):
    env = dict(os.environ, PYTHONPATH=str(EXAMPLES.parent))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and "Traceback" not in result.stderr


def test_urls_txt_holds_only_valid_public_urls():
    """Parsed, never fetched: the tests stay offline."""
    with open(EXAMPLES / "urls.txt", "rb") as stream:
        urls = [url for _, url in NumberedItems(stream, "auto", "urls.txt")]
    assert len(urls) >= 8
    for url in urls:
        assert to_spec(url, FetchOptions()).url.startswith("https://")


def test_api_calls_jsonl_through_the_cli(server, tmp_path):
    text = (EXAMPLES / "api_calls.jsonl").read_text()
    assert "http://127.0.0.1:8000/" in text
    calls = tmp_path / "api_calls.jsonl"
    calls.write_text(text.replace("http://127.0.0.1:8000", server.base_url))
    result = CliRunner().invoke(main, ["--body", "-r", "0", str(calls)])
    assert result.exit_code == 0, result.output
    sent = [json.loads(line) for line in text.splitlines()]
    rows = sorted((json.loads(line) for line in result.stdout.splitlines()),
                  key=lambda row: row["index"])
    assert [row["id"] for row in rows] == [call["id"] for call in sent]
    for call, row in zip(sent, rows):
        received = json.loads(row["body"])
        assert received["method"] == call["method"]
        if "json" in call:
            assert received["json"] == call["json"]
        else:
            assert received["body"] == call["data"]
    assert server.hits["/echo"] == len(sent)


def test_cluster_example_runs_two_workers_and_keeps_one_row_per_input():
    """examples/cluster/run.py: redis-server, two workers, one killed halfway (issue 18)."""
    import shutil

    if shutil.which("redis-server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed: CI must install it")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    env = dict(os.environ, PYTHONPATH=str(EXAMPLES.parent))
    result = subprocess.run([sys.executable, str(EXAMPLES / "cluster" / "run.py")],
                            capture_output=True, text=True, env=env,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert "400 rows for 400 inputs" in result.stdout
    assert "each index once: True" in result.stdout
    assert "Traceback" not in result.stderr
