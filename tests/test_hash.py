"""hash_body (--hash) (issue 19): the sha256 of the decoded body, the same on both paths."""
import hashlib
import json
import sqlite3
import subprocess
import sys

import pytest

from batchfetch import fetch_all
from batchfetch.testing.routes import random_bytes


@pytest.mark.parametrize("fast_path", [True, False], ids=["native", "requests_path"])
def test_the_digest_is_the_decoded_body_s_on_both_paths(server, fast_path):
    items = [server.url("/random/200000?seed=a"), server.url("/random/70000?seed=b&chunked=1"),
             server.url("/gzip/100000"), server.url("/status/404"), "ftp://no"]
    table = fetch_all(items, hash_body=True, keep_body=True, fast_path=fast_path, retries=0)
    for row in table[:4]:
        assert row.sha256 == hashlib.sha256(row.body).hexdigest()
    assert table[0].body == random_bytes("a", 200000)
    assert table[2].sha256 == hashlib.sha256(bytes(100000)).hexdigest()
    assert table[4].sha256 == ""
    assert fetch_all(items[:1], fast_path=fast_path)[0].sha256 == ""  # only when asked


def test_hash_flag_and_a_store_put_the_digest_in_the_rows(server, tmp_path, child_env):
    url = server.url("/validated/v1")
    result = subprocess.run([sys.executable, "-m", "batchfetch", url, "--hash", "-f", "jsonl",
                             "--header-column", "ETag"], capture_output=True, text=True,
                            env=child_env)
    row = json.loads(result.stdout)
    assert row["sha256"] == hashlib.sha256(b"version v1\n").hexdigest()
    assert row["etag"] == '"v1"'  # the page's validators, as a header column
    store = tmp_path / "runs.db"
    subprocess.run([sys.executable, "-m", "batchfetch", url, "-o", store, "-q"], check=True,
                   env=child_env)
    with sqlite3.connect(store) as connection:
        assert connection.execute("SELECT sha256 FROM rows").fetchall() == [(row["sha256"],)]
