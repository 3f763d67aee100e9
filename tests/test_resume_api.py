"""Resume from Python: fetch_all and iter_fetch (and a Fetcher's) with ``resume=FILE`` and
``retry_failed``, against the loopback server, as the command's --resume and
--retry-failed do."""
import json

import pytest

from batchfetch import BatchFetchError, Fetcher, ResumeError, fetch_all, iter_fetch
from batchfetch.resume import RecordedRows

FAST = {"retries": 0}


def oks_and_fails(table):
    return len(table.succeeded), len(table.failed)



def records_in(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def indexes_in(path):
    return sorted(record["index"] for record in records_in(path))


def interrupted_run(urls, path, rows_wanted):
    """What an interrupted run leaves: ``rows_wanted`` rows in ``path`` (one at a time, so
    the rest were not requested)."""
    for done, _ in enumerate(iter_fetch(urls, resume=path, concurrency=1, **FAST), start=1):
        if done == rows_wanted:
            break
    assert RecordedRows(path).count == rows_wanted


def test_fetch_all_starts_the_file_and_a_rerun_fetches_nothing_again(server, tmp_path):
    urls = [server.url(f"/ok?n={n}") for n in range(5)]
    path = tmp_path / "rows.jsonl"
    first = fetch_all(urls, resume=path, **FAST)
    assert oks_and_fails(first) == (5, 0) and indexes_in(path) == [0, 1, 2, 3, 4]
    again = fetch_all(urls, resume=str(path), **FAST)
    assert server.hits["/ok"] == 5 and len(records_in(path)) == 5
    # The kept rows, read back: the same table as the run that wrote them returned.
    assert again.to_records() == first.to_records()


def test_iter_fetch_yields_only_the_new_rows_and_appends_each(server, tmp_path):
    urls = [server.url(f"/ok?n={n}") for n in range(6)]
    path = tmp_path / "rows.jsonl"
    interrupted_run(urls, path, 2)
    kept = indexes_in(path)
    new = []
    for row in iter_fetch(urls, resume=path, **FAST):
        assert row.index in indexes_in(path)  # appended (and flushed) before it is yielded
        new.append(row.index)
    assert sorted(new) == sorted(set(range(6)) - set(kept))
    assert indexes_in(path) == list(range(6))
    assert all(record["url"] == urls[record["index"]] for record in records_in(path))


def test_fetch_all_keeps_the_rows_already_there_in_its_table(server, tmp_path):
    urls = [server.url(f"/ok?n={n}") for n in range(4)] + [server.url("/status/404")]
    path = tmp_path / "rows.csv"
    interrupted_run(urls, path, 3)
    table = fetch_all(urls, resume=path, **FAST)
    assert [row.index for row in table] == [0, 1, 2, 3, 4]
    assert [row.url for row in table] == urls and table[4].status == 404
    assert server.hits["/ok"] <= 4 + 1  # a request in flight at the break may be sent again
    assert table.summary().total == 5  # the kept rows count too


def test_retry_failed_fetches_failed_rows_again_and_replaces_them(server, tmp_path):
    urls = [server.url("/ok"), server.url("/flaky/a?fail=1"), server.url("/flaky/b?fail=1")]
    path = tmp_path / "rows.csv"
    assert oks_and_fails(fetch_all(urls, resume=path, **FAST)) == (1, 2)
    kept = fetch_all(urls, resume=path, **FAST)  # failed rows count as done
    assert oks_and_fails(kept) == (1, 2) and server.hits["/flaky/a"] == 1
    retried = fetch_all(urls, resume=path, retry_failed=True, **FAST)
    assert oks_and_fails(retried) == (3, 0)
    assert server.hits["/flaky/a"] == 2 and server.hits["/ok"] == 1
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and lines[1].startswith("0,") and ",false," not in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]  # no temporary file


def test_another_input_raises_resume_error_and_leaves_the_file_alone(server, tmp_path):
    urls = [server.url(f"/ok?n={n}") for n in range(3)]
    path = tmp_path / "rows.jsonl"
    fetch_all(urls, resume=path, **FAST)
    path.write_text(path.read_text().replace('"ok": true', '"ok": false'))
    before = path.read_bytes()
    other = [urls[0], server.url("/ok?other"), urls[2]]
    with pytest.raises(ResumeError, match=r"was written for another input: its row for input "
                                          r"1 has the url '.*/ok\?n=1', but input 1 is "
                                          r"'.*/ok\?other'") as caught:
        fetch_all(other, resume=path, retry_failed=True, **FAST)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, BatchFetchError)
    with pytest.raises(ResumeError, match="it has a row for input 2, but the input has only 2"):
        list(iter_fetch(urls[:2], resume=path, retry_failed=True, **FAST))
    assert path.read_bytes() == before and server.hits["/ok"] == 3


def test_a_file_that_is_not_rows_is_refused_when_the_call_is_made(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"index": 0, "url": "http://127.0.0.1:9/", "ok": true}\nhello\n')
    with pytest.raises(ResumeError, match="line 2 of .* is not a row"):
        iter_fetch(["http://127.0.0.1:9/"], resume=path)  # before the first next()
    with pytest.raises(ResumeError, match="is not a regular file"):
        fetch_all(["http://127.0.0.1:9/"], resume="/dev/null")


@pytest.mark.parametrize("kwargs, message", [
    ({"retry_failed": True}, "retry_failed=True goes with resume=FILE"),
    ({"resume": "rows.json"}, "cannot resume a json file; expected csv or jsonl"),
    ({"resume": "rows.xlsx"}, "cannot tell a format from '.xlsx'"),
])
def test_resume_choices_that_do_not_go_together(tmp_path, monkeypatch, kwargs, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        fetch_all(["http://127.0.0.1:9/"], **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_bodies_of_kept_rows_are_read_back(server, tmp_path):
    urls = [server.url("/bytes/5"), server.url("/gzip/3")]
    path = tmp_path / "rows.csv"
    first = fetch_all(urls, resume=path, keep_body=True, **FAST)
    again = fetch_all(urls, resume=path, keep_body=True, **FAST)
    assert [row.body for row in again] == [row.body for row in first] and first[0].body
    with pytest.raises(ResumeError, match="use the same --body"):
        fetch_all(urls, resume=path, **FAST)  # a file with body columns, a run without


def test_recorded_rows_give_another_suffix_its_format_and_serve_one_run(server, tmp_path):
    urls = [server.url("/ok?a"), server.url("/ok?b")]
    path = tmp_path / "rows.dat"
    with Fetcher(**FAST) as fetcher:
        fetcher.fetch_all(urls[:1], resume=RecordedRows(path, "csv"))
        recorded = RecordedRows(path, "csv")
        assert (recorded.count, recorded.existed) == (1, True)
        with pytest.raises(ValueError, match="made without retry_failed"):
            fetcher.fetch_all(urls, resume=recorded, retry_failed=True)
        assert len(fetcher.fetch_all(urls, resume=recorded)) == 2
        with pytest.raises(ValueError, match="read it again"):
            fetcher.fetch_all(urls, resume=recorded)
    assert path.read_text().startswith("index,id,url") and server.hits["/ok"] == 2
