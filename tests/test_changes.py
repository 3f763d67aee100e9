"""--since PREV: conditional re-fetch and the change column (issue 19, its second part),
against the loopback server's /page/<name>, whose pages a test changes between runs."""
import dataclasses
import json
import os
import socket
import sqlite3
import subprocess
import sys

import pytest

from batchfetch import FetchOptions, FetchResult, ResultTable, fetch_all, iter_fetch
from batchfetch.changes import PreviousRows, change_of, PreviousRow
from batchfetch.errors import OptionError, SinceError
from batchfetch.testing.routes import Page

from cluster import free_port
from command_process import url_file, wait_for

DATE = "Tue, 01 Dec 2026 00:00:00 GMT"


def pages(server, **bodies):
    """Set pages by name (a bytes body, or a Page); return their URLs in that order."""
    for name, page in bodies.items():
        server.pages[name] = page if isinstance(page, Page) else Page(page)
    return [server.url(f"/page/{name}") for name in bodies]


def changes(table):
    return [row.change for row in table]


@pytest.fixture(params=["in memory", "on disk"])
def index_kept(request, monkeypatch):
    """Both ways PREV is indexed: a small one in dicts, a large one in SQLite."""
    if request.param == "on disk":
        monkeypatch.setattr("batchfetch.previous.IN_MEMORY_BYTES", 0)
    return request.param


def test_each_change_kind_on_a_second_run(server, tmp_path):
    urls = pages(server, same=Page(b"s", etag='"s1"'), hashed=b"h", edited=Page(b"e1", etag='"e1"'),
                 deleted=Page(b"d", last_modified=DATE), removed=b"r", moving=b"m",
                 broken=b"b")
    first = fetch_all(urls, hash_body=True)
    first.write(tmp_path / "first.jsonl")
    assert changes(first) == [""] * 7  # without since, rows say nothing of change
    server.pages["edited"] = Page(b"e2", etag='"e2"')
    server.pages["deleted"].status = 404
    server.pages["removed"].status = 410
    server.pages["elsewhere"] = Page(b"m")
    server.pages["moving"].location = server.url("/page/elsewhere")
    server.pages["broken"].status = 500
    new_url = pages(server, fresh=b"f")

    second = fetch_all(urls + new_url, since=tmp_path / "first.jsonl", retries=0)
    assert changes(second) == ["same", "same", "changed", "gone", "gone", "moved", "failed",
                               "new"]
    assert second[0].status == 304 and second[0].ok and second[0].size == 0
    assert second[1].status == 200  # no validators: fetched, and compared by its hash
    assert "changes: new: 1, same: 2, changed: 1, moved: 1, gone: 2, failed: 1" in \
        str(second.summary())


def test_precedence_between_the_kinds():
    before = PreviousRow(ok=True, status=200, final_url="http://h/a", sha256="ab")
    row = FetchResult(0, "http://h/a", ok=True, status=200, final_url="http://h/b",
                      sha256="cd")
    assert change_of(row, before) == "moved"  # moved and changed: moved
    gone = FetchResult(0, "http://h/a", status=404, error="http", final_url="http://h/b")
    assert change_of(gone, before) == "gone"  # gone, moved and changed: gone
    assert change_of(gone, PreviousRow(ok=False, status=404)) == "failed"  # not gone: it was not there
    assert change_of(gone, None) == "failed"  # failed and new: failed
    timeout = FetchResult(0, "http://h/a", error="timeout")
    assert change_of(timeout, before) == "failed"
    ok_404 = FetchResult(0, "http://h/a", ok=True, status=404, sha256="ab")  # --ok-status 404
    assert change_of(ok_404, before) == "gone"
    same = FetchResult(0, "http://h/a", ok=True, status=200, final_url="http://h/a",
                       sha256="ab")
    assert change_of(same, before) == "same"
    assert change_of(same, PreviousRow(ok=True, status=200)) == "changed"  # no hash before
    assert change_of(same, PreviousRow(ok=False, status=500, sha256="ab")) == "changed"


def test_validators_are_sent_and_a_304_transfers_no_body(server, tmp_path):
    urls = pages(server, tagged=Page(b"x" * 5000, etag='"t"'),
                 dated=Page(b"y" * 5000, last_modified=DATE),
                 weak=Page(b"z" * 5000, etag='W/"w"'), plain=b"p" * 5000)
    fetch_all(urls, hash_body=True).write(tmp_path / "first.jsonl")
    served = {name: page.body_bytes for name, page in server.pages.items()}
    second = fetch_all(urls, since=tmp_path / "first.jsonl")
    assert [row.status for row in second] == [304, 304, 304, 200]
    assert changes(second) == ["same"] * 4
    for name in ("tagged", "dated", "weak"):
        assert server.pages[name].not_modified == 1
        assert server.pages[name].body_bytes == served[name]  # no body sent again
    assert server.pages["plain"].body_bytes == 2 * served["plain"]
    assert (second[0].etag, second[1].last_modified, second[2].etag) == ('"t"', DATE, 'W/"w"')


def test_a_304_carries_the_validators_and_hash_into_a_third_run(server, tmp_path):
    urls = pages(server, kept=Page(b"kept", etag='"k"', last_modified=DATE))
    first = fetch_all(urls, hash_body=True)
    first.write(tmp_path / "1.jsonl")
    second = fetch_all(urls, since=tmp_path / "1.jsonl")
    second.write(tmp_path / "2.jsonl")
    assert second[0].status == 304
    assert (second[0].sha256, second[0].etag, second[0].last_modified) == \
        (first[0].sha256, '"k"', DATE)
    third = fetch_all(urls, since=tmp_path / "2.jsonl")
    assert (third[0].status, third[0].change, third[0].sha256) == (304, "same", first[0].sha256)
    server.pages["kept"] = Page(b"new", etag='"k2"')
    fourth = fetch_all(urls, since=tmp_path / "2.jsonl")
    assert (fourth[0].status, fourth[0].change, fourth[0].etag) == (200, "changed", '"k2"')


def test_a_304_is_ok_whatever_ok_status_says_and_calls_no_handler(server, tmp_path):
    urls = pages(server, a=Page(b"a", etag='"a"'))
    fetch_all(urls, hash_body=True).write(tmp_path / "1.jsonl")
    failed = []
    table = fetch_all(urls, since=tmp_path / "1.jsonl", ok_status="200",
                      exception_handler=lambda item, exc: failed.append(item))
    assert (table[0].status, table[0].ok, table[0].error, table[0].change) == \
        (304, True, "", "same")
    assert failed == []
    # Without since, a 304 the caller asked for is a row like any other.
    plain = fetch_all([{"url": urls[0], "headers": {"If-None-Match": '"a"'}}], ok_status="200")
    assert (plain[0].status, plain[0].ok, plain[0].error) == (304, False, "http")


def test_a_failed_previous_row_sends_no_validators(server, tmp_path):
    urls = pages(server, flaky=Page(b"oops", etag='"f"', status=503))
    fetch_all(urls, hash_body=True, retries=0).write(tmp_path / "1.jsonl")
    server.pages["flaky"].status = 200
    table = fetch_all(urls, since=tmp_path / "1.jsonl")
    assert (table[0].status, table[0].change) == (200, "changed")
    assert server.pages["flaky"].not_modified == 0


def test_the_caller_s_own_validators_win_and_hooks_get_the_item_as_given(server, tmp_path):
    urls = pages(server, a=Page(b"a", etag='"a"'), b=Page(b"b", etag='"b"'))
    fetch_all(urls, hash_body=True).write(tmp_path / "1.jsonl")
    seen = []
    items = [urls[0], {"url": urls[1], "headers": {"If-None-Match": '"other"'}}]
    table = fetch_all(items, since=tmp_path / "1.jsonl",
                      on_result=lambda row: seen.append(row.change))
    assert [row.status for row in table] == [304, 200]  # b: the caller's tag, not the file's
    assert changes(table) == ["same", "same"] == seen
    handled = []
    server.pages["a"].status = 500
    fetch_all(items[:1], since=tmp_path / "1.jsonl", retries=0,
              exception_handler=lambda item, exc: handled.append(item))
    assert handled == [urls[0]]  # the URL as given, not the request with its validators


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "db"])
def test_prev_in_each_format(server, tmp_path, index_kept, fmt):
    urls = pages(server, a=Page(b"a", etag='"a"'), b=b"b", c=b"c")
    path = tmp_path / f"first.{fmt}"
    first = fetch_all(urls, hash_body=True)
    if fmt == "db":
        first.to_sqlite(path)
    else:
        first.write(path)
    server.pages["c"].body = b"C"
    table = fetch_all(urls, since=path)
    assert changes(table) == ["same", "same", "changed"]
    assert table[0].status == 304


def test_prev_without_a_suffix_is_told_by_its_content(server, tmp_path):
    urls = pages(server, a=b"a")
    first = fetch_all(urls, hash_body=True)
    for fmt in ("jsonl", "csv", "db"):
        path = tmp_path / f"first-{fmt}"
        if fmt == "db":
            first.to_sqlite(tmp_path / "x.db")
            os.rename(tmp_path / "x.db", path)
        else:
            first.write(path, fmt)
        assert changes(fetch_all(urls, since=path)) == ["same"], fmt


def test_a_store_compares_with_its_latest_finished_run(server, tmp_path):
    urls = pages(server, a=b"one")
    store = tmp_path / "runs.db"
    fetch_all(urls, hash_body=True).to_sqlite(store)
    server.pages["a"].body = b"two"
    fetch_all(urls, hash_body=True).to_sqlite(store)
    with sqlite3.connect(store) as connection:  # a third, interrupted run: not compared with
        connection.execute("INSERT INTO runs (started) VALUES ('now')")
    assert changes(fetch_all(urls, since=store)) == ["same"]


def test_matching_by_id_and_by_url(server, tmp_path, index_kept):
    urls = pages(server, a=b"a", b=b"b", c=b"c")
    first = fetch_all([{"url": urls[0], "id": "x"}, {"url": urls[1], "id": 7}, urls[2]],
                      hash_body=True)
    first.write(tmp_path / "1.jsonl")
    # id "x" now names b's URL: matched by id, its final URL is another (moved); id 7 is
    # matched by id; the input with no id matches c by URL, and so does an input whose id
    # the file lacks (c's row has no id); a row with another id is no match for "y".
    table = fetch_all([{"url": urls[1], "id": "x"}, {"url": urls[1], "id": 7},
                       urls[2], {"url": urls[2], "id": "new"}, {"url": urls[0], "id": "y"}],
                      since=tmp_path / "1.jsonl")
    assert changes(table) == ["moved", "same", "same", "same", "new"]


def test_matching_by_body_for_the_same_url(server, tmp_path, index_kept):
    url = server.url("/echo")
    items = [{"url": url, "method": "POST", "json": {"n": n}} for n in range(3)]
    fetch_all(items, hash_body=True).write(tmp_path / "1.jsonl")
    shuffled = [items[2], items[0], {"url": url, "method": "POST", "json": {"n": 9}},
                {"url": url, "method": "PUT", "json": {"n": 1}}]
    table = fetch_all(shuffled, since=tmp_path / "1.jsonl")
    assert changes(table) == ["same", "same", "new", "new"]
    assert len({row.request_hash for row in table}) == 4


def test_the_last_of_duplicate_rows_wins(server, tmp_path, index_kept):
    url, = pages(server, a=b"second")
    rows = [FetchResult(0, url, ok=True, status=200, final_url=url, sha256="0" * 64),
            FetchResult(1, url, ok=True, status=200, final_url=url,
                        sha256=fetch_all([url], hash_body=True)[0].sha256)]
    for order, expected in ((rows, "same"), (rows[::-1], "changed")):
        (tmp_path / "dup.jsonl").write_text(
            "".join(json.dumps(row.to_record()) + "\n" for row in order))  # in this order
        assert changes(fetch_all([url], since=tmp_path / "dup.jsonl")) == [expected]


def test_prev_of_another_input_makes_every_unmatched_row_new(server, tmp_path):
    fetch_all(pages(server, a=b"a"), hash_body=True).write(tmp_path / "1.jsonl")
    table = fetch_all(pages(server, b=b"b", c=b"c") + ["not a url"],
                      since=tmp_path / "1.jsonl")
    assert changes(table) == ["new", "new", "failed"]


def test_a_prev_written_before_the_validator_columns(server, tmp_path):
    """A file from before etag and last_modified were columns: its --header-column ETag
    (or -i headers) still give the validators."""
    url, = pages(server, a=Page(b"a", etag='"a"', last_modified=DATE))
    row = fetch_all([url], hash_body=True, response_headers=True)[0]
    record = row.to_record(headers=True)
    for name in ("etag", "last_modified", "request_hash", "change"):
        del record[name]
    (tmp_path / "old.jsonl").write_text(json.dumps(record) + "\n")
    table = fetch_all([url], since=tmp_path / "old.jsonl")
    assert (table[0].status, table[0].change) == (304, "same")


def test_unreadable_prev_is_a_clear_error(server, tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"index": 0, "url": "http://127.0.0.1:9/", "ok": true}\n'
                                        "this is not json\n")
    (tmp_path / "corrupt.db").write_bytes(b"SQLite format 3\x00" + b"\x01" * 4000)
    (tmp_path / "cut.jsonl").write_text('{"index": 0, "url": "http://127.0.0.1:9/", "ok": true}\n'
                                        '{"index": 1, "url": "http://12')  # killed mid-line
    with pytest.raises(SinceError, match="line 2 is not a row"):
        fetch_all([server.url("/ok")], since=tmp_path / "bad.jsonl")
    with pytest.raises(SinceError, match="corrupt.db"):
        fetch_all([server.url("/ok")], since=tmp_path / "corrupt.db")
    with pytest.raises(SinceError, match="no such file"):
        fetch_all([server.url("/ok")], since=tmp_path / "missing.jsonl")
    assert changes(fetch_all([server.url("/ok")], since=tmp_path / "cut.jsonl")) == ["new"]
    with pytest.raises(OptionError, match="changed_only needs since"):
        FetchOptions(changed_only=True)


def test_changed_only_saves_new_and_changed_bodies_only(server, tmp_path):
    urls = pages(server, same=Page(b"same", etag='"s"'), hashed=b"hashed", edited=b"v1",
                 gone=b"gone")
    save = tmp_path / "bodies"
    first = fetch_all(urls, save_dir=save, hash_body=True)
    first.write(tmp_path / "1.jsonl")
    before = {path: os.stat(path).st_mtime_ns for path in (row.path for row in first)}
    server.pages["edited"].body = b"v2"
    server.pages["gone"].status = 404
    new_url = pages(server, fresh=b"fresh")
    table = fetch_all(urls + new_url, since=tmp_path / "1.jsonl", save_dir=save,
                      changed_only=True)
    assert changes(table) == ["same", "same", "changed", "gone", "new"]
    # The same rows point at the files the first run wrote; the gone one at none.
    assert [row.path for row in table[:2]] == [row.path for row in first[:2]]
    assert [bool(row.path) for row in table[2:]] == [True, False, True]
    assert open(table[2].path, "rb").read() == b"v2"
    assert open(table[4].path, "rb").read() == b"fresh"
    for row in first[:2]:  # the same bodies' files were not written again
        assert os.stat(row.path).st_mtime_ns == before[row.path]
    assert open(first[3].path, "rb").read() == b"gone"  # a gone row's file stays as it was
    assert not [name for name in os.listdir(save) if name.endswith((".part", ".held"))]


def test_a_304_points_at_the_saved_body_and_never_writes_an_empty_one(server, tmp_path):
    urls = pages(server, a=Page(b"body", etag='"a"'))
    first = fetch_all(urls, save_dir=tmp_path / "b", hash_body=True)
    first.write(tmp_path / "1.jsonl")
    second = fetch_all(urls, since=tmp_path / "1.jsonl", save_dir=tmp_path / "b")
    assert (second[0].status, second[0].path) == (304, first[0].path)
    assert open(first[0].path, "rb").read() == b"body"
    elsewhere = fetch_all(urls, since=tmp_path / "1.jsonl", save_dir=tmp_path / "c")
    assert elsewhere[0].path == first[0].path  # the body is where the first run saved it
    os.unlink(first[0].path)
    gone = fetch_all(urls, since=tmp_path / "1.jsonl", save_dir=tmp_path / "b")
    assert (gone[0].status, gone[0].path) == (304, "")  # nothing to point at
    assert os.listdir(tmp_path / "b") == []


def test_since_with_worker_processes(server, tmp_path):
    urls = pages(server, **{f"p{n}": Page(b"%d" % n, etag=f'"{n}"') for n in range(40)})
    fetch_all(urls, hash_body=True).write(tmp_path / "1.jsonl")
    server.pages["p3"] = Page(b"three", etag='"3b"')
    table = fetch_all(urls, since=tmp_path / "1.jsonl", workers=2)
    assert changes(table) == ["same"] * 3 + ["changed"] + ["same"] * 36


def test_the_command_line(server, tmp_path, child_env):
    urls = pages(server, a=Page(b"a", etag='"a"'), b=b"b")
    listed = url_file(tmp_path, urls)

    def run(*args):
        return subprocess.run([sys.executable, "-m", "batchfetch", listed, *map(str, args)],
                              capture_output=True, text=True, env=child_env, cwd=tmp_path)

    first = run("--hash", "-o", "1.csv")
    assert first.returncode == 0, first.stderr
    server.pages["b"].body = b"B"
    second = run("--since", "1.csv", "-o", "2.jsonl")
    assert second.returncode == 0, second.stderr
    assert "changes: same: 1, changed: 1" in second.stderr
    rows = sorted((json.loads(line) for line in (tmp_path / "2.jsonl").read_text().splitlines()),
                  key=lambda row: row["index"])  # streamed as they completed
    assert [(row["status"], row["change"]) for row in rows] == [(304, "same"), (200, "changed")]
    only = run("--since", "2.jsonl", "--changed-only", "-o", "3.jsonl")
    assert only.returncode == 0, only.stderr
    assert (tmp_path / "3.jsonl").read_text() == ""  # nothing changed: no row written
    assert "2 fetched" in only.stderr and "changes: same: 2" in only.stderr


def test_usage_errors(server, tmp_path, child_env):
    fetch_all([server.url("/ok")]).write(tmp_path / "1.jsonl")
    before = (tmp_path / "1.jsonl").read_bytes()

    def run(*args):
        return subprocess.run([sys.executable, "-m", "batchfetch", server.url("/ok"), *args],
                              capture_output=True, text=True, env=child_env, cwd=tmp_path)

    for args, said in [
            (["--since", "1.jsonl", "-o", "1.jsonl"], "--since and -o both name 1.jsonl"),
            (["--since", "./1.jsonl", "-o", str(tmp_path / "1.jsonl")], "both name"),
            (["--changed-only"], "changed_only needs since"),
            (["--since", "1.jsonl", "--changed-only", "--resume", "-o", "2.jsonl"],
             "--changed-only does not go with --resume"),
            (["--since", "missing.jsonl"], "'missing.jsonl': no such file"),
            (["--since", "."], "--since")]:
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert said in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert (tmp_path / "1.jsonl").read_bytes() == before
    bad = tmp_path / "bad.csv"
    bad.write_text("no,columns\n1,2\n")
    result = run("--since", "bad.csv")
    assert result.returncode == 2 and "no url and ok columns" in result.stderr, result.stderr
    result = run("--since", "-")
    assert result.returncode == 2 and "not standard input" in result.stderr, result.stderr


def test_a_store_is_both_prev_and_output(server, tmp_path, child_env):
    urls = pages(server, a=Page(b"a", etag='"a"'), b=b"b")
    listed = url_file(tmp_path, urls)
    store = tmp_path / "runs.db"
    command = [sys.executable, "-m", "batchfetch", listed, "-o", store, "--since", store]
    first = subprocess.run(command, capture_output=True, text=True, env=child_env)
    assert first.returncode == 0, first.stderr
    assert "holds no finished run yet: every row is new" in first.stderr
    server.pages["b"].body = b"B"
    second = subprocess.run(command, capture_output=True, text=True, env=child_env)
    assert second.returncode == 0, second.stderr
    with sqlite3.connect(store) as connection:
        assert connection.execute('SELECT run, "index", status, change FROM rows ORDER BY '
                                  'run, "index"').fetchall() == \
            [(1, 0, 200, "new"), (1, 1, 200, "new"), (2, 0, 304, "same"),
             (2, 1, 200, "changed")]


def test_secrets_in_urls_are_matched_masked_and_never_stored(server, tmp_path):
    url = server.url("/page/a").replace("http://", "http://ann:s3cret@")
    pages(server, a=Page(b"a", etag='"a"'))
    fetch_all([url], hash_body=True).to_sqlite(tmp_path / "runs.db")
    table = fetch_all([url], since=tmp_path / "runs.db")
    assert (table[0].status, table[0].change) == (304, "same")
    assert b"s3cret" not in (tmp_path / "runs.db").read_bytes()


def test_the_index_lives_on_disk(tmp_path, monkeypatch):
    """A large PREV is indexed in SQLite, not in Python objects: looking up rows of a file
    of 50,000 (as if it were past IN_MEMORY_BYTES) finds each, and the dicts stay empty."""
    monkeypatch.setattr("batchfetch.previous.IN_MEMORY_BYTES", 1_000_000)
    with open(tmp_path / "big.jsonl", "w") as stream:
        for index in range(50_000):
            stream.write(json.dumps({"index": index, "url": f"http://h/{index}", "ok": True,
                                     "status": 200, "sha256": f"{index:064x}"}) + "\n")
    previous = PreviousRows(tmp_path / "big.jsonl")
    try:
        assert previous.count == 50_000
        assert previous.find(None, "GET", "http://h/49999", "").sha256 == f"{49999:064x}"
        assert previous.find(None, "GET", "http://h/50000", "") is None
        assert previous.find(None, "POST", "http://h/1", "") is None
        assert previous._by_url == {}
    finally:
        previous.close()


def test_the_readme_example_against_python_s_file_server(tmp_path, child_env):
    """README's "Re-running a batch", against http.server (a server batchfetch did not
    write, which answers If-Modified-Since with 304)."""
    site = tmp_path / "site"
    site.mkdir()
    for name, text in (("a", "alpha\n"), ("b", "beta\n"), ("c", "gamma\n")):
        (site / f"{name}.txt").write_text(text)
        os.utime(site / f"{name}.txt", (1_700_000_000, 1_700_000_000))  # long before the edit
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                               "127.0.0.1"], cwd=site, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _accepts(port))
        listed = url_file(tmp_path, [f"http://127.0.0.1:{port}/{name}.txt" for name in "abc"])

        def run(*args):
            return subprocess.run([sys.executable, "-m", "batchfetch", listed, *args],
                                  capture_output=True, text=True, env=child_env, cwd=tmp_path)

        assert run("--hash", "-o", "monday.jsonl", "-q").returncode == 0
        (site / "b.txt").write_text("beta, edited\n")
        (site / "c.txt").unlink()
        result = run("--since", "monday.jsonl", "-f", "table")
        assert result.returncode == 1, result.stderr
        lines = [line.split()[:3] for line in result.stdout.splitlines()]
        assert lines == [["#", "status", "change"], ["0", "304", "same"],
                         ["1", "200", "changed"], ["2", "404", "gone"]]
        assert "changes: same: 1, changed: 1, gone: 1" in result.stderr
    finally:
        server.terminate()
        server.wait()


def _accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_validators_go_to_the_same_url_with_get_or_head_only(server, tmp_path):
    """A POST with If-None-Match asks for 412 when the tag matches (RFC 9110 13.1.2), and
    an id's previous row may have another URL: neither gets the previous validators."""
    urls = pages(server, a=Page(b"a", etag='"x"'), b=Page(b"b", etag='"x"'))
    post = {"url": urls[0], "method": "POST", "json": {"n": 1}}
    fetch_all([{"url": urls[0], "id": 1}, post], hash_body=True).write(tmp_path / "1.jsonl")
    table = fetch_all([{"url": urls[1], "id": 1}, post], since=tmp_path / "1.jsonl")
    assert [row.status for row in table] == [200, 200]
    assert [row.change for row in table] == ["moved", "same"]  # id 1's URL is another
    assert server.pages["a"].not_modified == server.pages["b"].not_modified == 0


def test_a_304_after_a_redirect_counts_where_it_came_from(server, tmp_path):
    """The validators follow a redirect (requests keeps the headers). From the place it led
    to last time, a 304 is the same page; from another place, whose nginx ETag (mtime and
    size) can equal the first's by chance, it is a move whose body nobody hashed."""
    urls = pages(server, r=Page(b"", location=server.url("/page/one")), one=Page(b"1", etag='"t"'),
                 two=Page(b"2", etag='"t"'), direct=Page(b"d", etag='"t"'))
    first = fetch_all([urls[0], urls[3]], hash_body=True)
    first.write(tmp_path / "1.jsonl")
    same = fetch_all([urls[0]], since=tmp_path / "1.jsonl")
    assert (same[0].status, same[0].change, same[0].sha256) == (304, "same", first[0].sha256)
    server.pages["r"].location = server.url("/page/two")
    server.pages["direct"] = Page(b"", location=server.url("/page/two"))
    table = fetch_all([urls[0], urls[3]], since=tmp_path / "1.jsonl")
    assert [(row.status, row.change, row.sha256) for row in table] == [(304, "moved", "")] * 2


def test_params_and_a_url_requests_rewrites_still_get_validators(server, tmp_path):
    url, = pages(server, a=Page(b"a", etag='"a"'))
    items = [{"url": url, "params": {"q": "x y"}}, url.replace("http://", "HTTP://")]
    first = fetch_all(items, hash_body=True)
    first.write(tmp_path / "1.jsonl")
    table = fetch_all(items, since=tmp_path / "1.jsonl")
    assert [(row.status, row.change) for row in table] == [(304, "same")] * 2
    assert [row.sha256 for row in table] == [row.sha256 for row in first]


def test_changed_only_keeps_the_body_of_a_moved_row_that_changed(server, tmp_path):
    urls = pages(server, r=Page(b"", location=server.url("/page/one")), one=b"1", two=b"2",
                 three=b"1")
    fetch_all(urls[:1], hash_body=True).write(tmp_path / "1.jsonl")
    server.pages["r"].location = server.url("/page/two")
    moved = fetch_all(urls[:1], since=tmp_path / "1.jsonl", changed_only=True,
                      save_dir=tmp_path / "b")
    assert (moved[0].change, open(moved[0].path, "rb").read()) == ("moved", b"2")
    server.pages["r"].location = server.url("/page/three")  # the same bytes, elsewhere
    again = fetch_all(urls[:1], since=tmp_path / "1.jsonl", changed_only=True,
                      save_dir=tmp_path / "c")
    assert (again[0].change, again[0].path) == ("moved", "")


def test_an_empty_prev_says_every_row_is_new(server, tmp_path, caplog):
    (tmp_path / "empty.jsonl").write_text("")
    table = fetch_all([server.url("/ok")], since=tmp_path / "empty.jsonl")
    assert changes(table) == ["new"]
    assert "empty.jsonl holds no rows: every row is new" in caplog.text


def test_pandas_types_cover_every_column():
    from batchfetch import PANDAS_DTYPES
    from batchfetch.results import BODY_COLUMNS, COLUMNS

    assert set(COLUMNS + BODY_COLUMNS) <= set(PANDAS_DTYPES)


def test_an_item_with_params_that_are_no_pairs_is_one_error_row(server, tmp_path):
    fetch_all([server.url("/ok")], hash_body=True).write(tmp_path / "1.jsonl")
    items = [server.url("/ok"), {"url": server.url("/ok"), "params": [1, 2]}]
    for since in (None, tmp_path / "1.jsonl"):
        table = fetch_all(items, since=since)
        assert [row.ok for row in table] == [True, False]


def test_a_retried_or_failed_answer_never_replaces_the_previous_body(server, tmp_path):
    """503, then 304: the 503's body is no page's; nor is a 503 whose retry was reset, nor
    the 404 page of a page now gone."""
    urls = pages(server, a=Page(b"hello", etag='"a"'), b=Page(b"world", etag='"b"'),
                 c=b"there")
    save = tmp_path / "bodies"
    first = fetch_all(urls, save_dir=save, hash_body=True)
    first.write(tmp_path / "1.jsonl")
    server.pages["a"].faults = [503]
    server.pages["b"].faults = [503, 0]
    server.pages["c"].status = 404
    table = fetch_all(urls, since=tmp_path / "1.jsonl", save_dir=save, retries=1, backoff=0)
    assert [(row.status, row.change, row.attempts) for row in table] == \
        [(304, "same", 2), (None, "failed", 2), (404, "gone", 1)]
    assert [open(row.path, "rb").read() for row in first] == [b"hello", b"world", b"there"]
    assert [row.path for row in table] == [first[0].path, "", ""]
    assert sorted(os.listdir(save)) == sorted(os.path.basename(row.path) for row in first)


def test_a_body_that_cannot_be_kept_leaves_nothing_held(server, tmp_path):
    url, = pages(server, a=b"a")
    ResultTable([]).write(tmp_path / "empty.jsonl")
    save = tmp_path / "bodies"
    os.makedirs(save / "00000000_127.0.0.1_a")  # a directory where the body would go
    table = fetch_all([url], since=tmp_path / "empty.jsonl", save_dir=save)
    assert (table[0].error, table[0].change) == ("save", "failed")
    assert os.listdir(save) == ["00000000_127.0.0.1_a"]


def test_two_answers_for_one_index_are_held_apart(server, tmp_path):
    """A repeated index: a 500 and then the page, each held under its own name; the ok
    row's file is the page's, whatever order they are settled in."""
    url, = pages(server, a=Page(b"NEW BODY", faults=[500]))
    ResultTable([]).write(tmp_path / "empty.jsonl")
    save = tmp_path / "bodies"
    table = fetch_all([(0, url), (0, url)], indexed=True, since=tmp_path / "empty.jsonl",
                      save_dir=save, retries=0)
    ok = [row for row in table if row.ok]
    assert len(ok) == 1 and open(ok[0].path, "rb").read() == b"NEW BODY"
    assert os.listdir(save) == [os.path.basename(ok[0].path)]


def test_an_interrupted_run_leaves_no_held_body(server, tmp_path, wait_until):
    urls = [server.url(f"/ok?n={n}") for n in range(20)]
    ResultTable([]).write(tmp_path / "empty.jsonl")
    rows = iter_fetch(urls, since=tmp_path / "empty.jsonl", changed_only=True,
                      save_dir=tmp_path / "b", concurrency=20)
    first = next(rows)
    # The other answers arrive and are held while nobody takes their rows.
    wait_until(lambda: len(os.listdir(tmp_path / "b")) >= 19)
    rows.close()  # a break, or Ctrl-C
    # Only the one row taken is kept (new); no body held for the others is left.
    assert os.listdir(tmp_path / "b") == [os.path.basename(first.path)]


def test_repeated_indexes_with_changed_only(server, tmp_path):
    ResultTable([]).write(tmp_path / "empty.jsonl")
    url = server.url("/ok")
    table = fetch_all([(0, url)] * 3, indexed=True, since=tmp_path / "empty.jsonl",
                      changed_only=True, save_dir=tmp_path / "b")
    assert [(row.ok, row.change) for row in table] == [(True, "new")] * 3
    assert os.listdir(tmp_path / "b") == [os.path.basename(table[0].path)]


def test_a_304_to_the_caller_s_own_validators(server, tmp_path):
    url, = pages(server, a=Page(b"a", etag='"a"'))
    first = fetch_all([url], hash_body=True)
    first.write(tmp_path / "1.jsonl")
    mine = fetch_all([{"url": url, "headers": {"If-None-Match": '"a"'}}],
                     since=tmp_path / "1.jsonl")
    assert (mine[0].status, mine[0].change, mine[0].sha256) == (304, "same", first[0].sha256)
    run_wide = fetch_all([url], since=tmp_path / "1.jsonl", headers={"If-None-Match": '"a"'})
    assert (run_wide[0].change, run_wide[0].sha256) == ("same", first[0].sha256)


def test_head_rows_are_compared_by_their_validators(server, tmp_path):
    urls = pages(server, tagged=Page(b"a", etag='"v1"'), plain=b"b")
    fetch_all(urls, method="HEAD", hash_body=True).write(tmp_path / "1.jsonl")
    assert changes(fetch_all(urls, method="HEAD", since=tmp_path / "1.jsonl")) == \
        ["same", "changed"]  # nothing says the plain page is the same
    server.pages["tagged"] = Page(b"a2", etag='"v2"')
    assert changes(fetch_all(urls[:1], method="HEAD", since=tmp_path / "1.jsonl")) == \
        ["changed"]


def test_a_validator_no_request_may_carry_is_left_out(server, tmp_path):
    url, = pages(server, a=b"a")
    row = fetch_all([url], hash_body=True)[0]
    bad = dataclasses.replace(row, etag='"a\x01b"')
    (tmp_path / "1.jsonl").write_text(json.dumps(bad.to_record()) + "\n")
    table = fetch_all([url], since=tmp_path / "1.jsonl")
    assert (table[0].status, table[0].change) == (200, "same")


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_ids_match_the_same_way_whatever_the_format(server, tmp_path, index_kept, fmt):
    ids = ["1e3", "[1,2]", " 7", "x", 8]
    urls = pages(server, **{f"p{n}": b"%d" % n for n in range(len(ids))})
    first = fetch_all([{"url": url, "id": id_} for url, id_ in zip(urls, ids)],
                      hash_body=True)
    first.write(tmp_path / f"1.{fmt}")
    # Each id now names the next page: matched by id, each is moved.
    table = fetch_all([{"url": urls[(n + 1) % len(urls)], "id": id_}
                       for n, id_ in enumerate(ids)], since=tmp_path / f"1.{fmt}")
    assert changes(table) == ["moved"] * len(ids)


def test_prev_files_as_people_leave_them(server, tmp_path):
    url = server.url("/ok")
    first = fetch_all([url], hash_body=True)
    record = json.dumps(first[0].to_record())
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + record.encode() + b"\n")
    (tmp_path / "no-newline.jsonl").write_text(record)
    for name in ("bom.jsonl", "no-newline.jsonl"):
        assert changes(fetch_all([url], since=tmp_path / name)) == ["same"], name
    first.write(tmp_path / "rows.json")
    with pytest.raises(SinceError, match="a JSON document"):
        fetch_all([url], since=tmp_path / "rows.json")


def test_the_api_refuses_what_the_command_refuses(server, tmp_path):
    fetch_all([server.url("/ok")], hash_body=True).write(tmp_path / "1.jsonl")
    with pytest.raises(ValueError, match="both name"):
        fetch_all([server.url("/ok")], since=tmp_path / "1.jsonl", resume=tmp_path / "1.jsonl")
    with pytest.raises(ValueError, match="does not go with resume"):
        fetch_all([server.url("/ok")], since=tmp_path / "1.jsonl", changed_only=True,
                  resume=tmp_path / "2.jsonl")


def test_the_caller_s_validators_and_a_failed_previous_row(server, tmp_path):
    url, = pages(server, a=Page(b"oops", etag='"x"', status=500))
    fetch_all([url], hash_body=True, retries=0).write(tmp_path / "1.jsonl")
    server.pages["a"].status = 200
    table = fetch_all([{"url": url, "headers": {"If-None-Match": '"x"'}}],
                      since=tmp_path / "1.jsonl")
    assert (table[0].status, table[0].change) == (304, "changed")  # nothing to be the same as


def test_odd_values_in_a_prev(server, tmp_path, index_kept):
    """Values batchfetch never writes (a number for an etag, a URL with an undecodable
    byte, a bool id from a store) are read the same way by both indexes."""
    url, = pages(server, a=Page(b"a", etag='"5"'))
    row = fetch_all([url], hash_body=True)[0]
    record = dict(row.to_record(), etag=5, request_hash=None)
    odd = dict(row.to_record(), index=1, url=url + "/\udcff", final_url=url + "/\udcff")
    (tmp_path / "1.jsonl").write_text(json.dumps(record) + "\n" + json.dumps(odd) + "\n")
    assert changes(fetch_all([url], since=tmp_path / "1.jsonl")) == ["same"]
    ResultTable([dataclasses.replace(row, id=True)]).to_sqlite(tmp_path / "ids.db")
    table = fetch_all([{"url": url, "id": True}, {"url": url, "id": 1}],
                      since=tmp_path / "ids.db")
    assert changes(table) == ["same", "new"]


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("workers", [1, 2])
def test_every_fault_is_one_failed_row(server, tmp_path, workers):
    """With since, each input still gets exactly one row, whatever went wrong."""
    url, = pages(server, a=Page(b"a", etag='"a"'))
    faults = [server.url("/fault/reset"), server.url("/fault/hang"),
              server.url("/fault/trickle?interval=2"), server.url("/status/503"),
              f"http://127.0.0.1:{_free_port()}/refused", "not a url",
              server.url("/fault/truncated")]
    fetch_all([url] + faults, hash_body=True, retries=0, timeout=(5, 1)).write(
        tmp_path / "1.jsonl")
    table = fetch_all([url] + faults, since=tmp_path / "1.jsonl", retries=0,
                      timeout=(5, 1), workers=workers, save_dir=tmp_path / "b")
    assert [row.index for row in table] == list(range(1 + len(faults)))
    assert [row.change for row in table] == ["same"] + ["failed"] * len(faults)
    assert [row.error for row in table[1:]] == ["reset", "timeout", "timeout", "http",
                                                "connect", "invalid_url", "truncated"]
    # The 304 writes no file, the failures no partial one; the 503's page is saved, as
    # without since, since no file was there for it to replace.
    assert os.listdir(tmp_path / "b") == ["00000004_127.0.0.1_503"]


def test_both_request_paths_and_worker_processes_give_the_same_rows(both_paths, server,
                                                                      tmp_path):
    urls = pages(server, a=Page(b"a", etag='"a"'), b=Page(b"b", last_modified=DATE),
                 c=b"c", d=b"d", r=Page(b"", location=server.url("/page/c")))
    urls.append(server.url("/gzip/5000"))
    first = fetch_all(urls, hash_body=True)
    first.write(tmp_path / "1.jsonl")
    server.pages["d"].body = b"D"
    local = fetch_all(urls, since=tmp_path / "1.jsonl")
    spread = fetch_all(urls, since=tmp_path / "1.jsonl", workers=2)

    def fields(row):
        return {key: value for key, value in row.to_record().items()
                if key not in ("elapsed", "waited")}

    assert [fields(row) for row in local] == [fields(row) for row in spread]
    assert [row.change for row in local] == ["same", "same", "same", "changed", "same",
                                             "same"]
    assert [row.status for row in local] == [304, 304, 200, 200, 200, 200]


def test_a_link_at_a_body_s_name_is_replaced_not_followed(server, tmp_path):
    url, = pages(server, a=b"new body")
    ResultTable([]).write(tmp_path / "empty.jsonl")
    save, outside = tmp_path / "bodies", tmp_path / "outside.txt"
    save.mkdir()
    outside.write_bytes(b"not yours")
    os.symlink(outside, save / "00000000_127.0.0.1_a")
    table = fetch_all([url], since=tmp_path / "empty.jsonl", save_dir=save)
    assert open(table[0].path, "rb").read() == b"new body"
    assert not os.path.islink(table[0].path) and outside.read_bytes() == b"not yours"
