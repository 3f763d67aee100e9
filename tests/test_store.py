"""-o runs.db: SQLite as the run store (issue 19, its first part): typed rows, a runs table,
bounded transactions, and files it cannot use left as they were."""
import json
import resource
import signal
import sqlite3
import subprocess
import sys

import pytest

from batchfetch import FetchOptions, FetchResult, ResultTable, fetch_all
from batchfetch.store import TRANSACTION_ROWS, StoreError, read_run

from command_process import start, url_file, wait_for


def query(path, sql, *args):
    with sqlite3.connect(path) as connection:
        return connection.execute(sql, args).fetchall()


def rows_committed(store, run=None):
    """A condition for wait_for: the store has rows (of ``run``) committed."""
    def committed():
        try:
            where = "" if run is None else f" WHERE run = {run}"
            return query(store, f"SELECT count(*) FROM rows{where}")[0][0] > 0
        except sqlite3.Error:
            return False
    return committed


def test_each_run_adds_its_rows_and_a_runs_row(server, tmp_path, child_env):
    urls = url_file(tmp_path, [server.url("/ok"), server.url("/status/404"), "not a url",
                               server.url("/json")])
    store = tmp_path / "runs.db"
    for _ in range(2):
        result = subprocess.run([sys.executable, "-m", "batchfetch", urls, "-o", store,
                                 "-u", "ann:s3cret", "-H", "X-Api-Key: k3y", "--body", "-r", "0"],
                                capture_output=True, text=True, env=child_env)
        assert result.returncode == 1, result.stderr
    runs = query(store, "SELECT run, finished IS NOT NULL, total, ok, failed, options, "
                        "batchfetch FROM runs")
    assert [run[:5] for run in runs] == [(1, 1, 4, 2, 2), (2, 1, 4, 2, 2)]
    options = json.loads(runs[0][5])
    assert options["auth"] == ["ann", "***"] and options["headers"]["X-Api-Key"] == "***"
    assert "s3cret" not in runs[0][5] and "k3y" not in runs[0][5]
    rows = query(store, 'SELECT "index", status, ok, error, typeof(status), typeof(elapsed), '
                        'body FROM rows WHERE run = 2 ORDER BY "index"')
    assert [row[:4] for row in rows] == [(0, 200, 1, ""), (1, 404, 0, "http"),
                                         (2, None, 0, "invalid_url"), (3, 200, 1, "")]
    assert rows[0][4:] == ("integer", "real", b"ok\n")
    indexes = {name for (name,) in query(store, "SELECT name FROM sqlite_master WHERE "
                                                "type = 'index'")}
    assert {"rows_run_index", "rows_url", "rows_id"} <= indexes


def test_pandas_reads_a_store(server, tmp_path):
    pandas = pytest.importorskip("pandas")
    table = fetch_all([server.url("/ok"), server.url("/status/503")], retries=0)
    table.to_sqlite(tmp_path / "runs.db")
    with sqlite3.connect(tmp_path / "runs.db") as connection:
        frame = pandas.read_sql('SELECT "index", status, error FROM rows', connection)
    assert frame["status"].tolist() == [200, 503]


def test_a_table_round_trips_through_a_store(server, tmp_path):
    items = [{"url": server.url("/random/50?seed=1"), "id": 7},
             {"url": server.url("/json"), "id": "x"}, {"url": "ftp://no", "id": [1, 2]}]
    table = fetch_all(items, keep_body=True, response_headers=True, retries=0)
    store = tmp_path / "runs.db"
    assert table.to_sqlite(store, options=FetchOptions(auth=("a", "pw"))) == 1
    assert table.to_sqlite(store) == 2
    back = ResultTable.from_sqlite(store)
    assert [(row.index, row.id, row.status, row.error, row.body) for row in back] == \
        [(row.index, row.id if not isinstance(row.id, list) else json.dumps(row.id),
          row.status, row.error, row.body) for row in table]
    assert back[1].headers == table[1].headers and back[1].json() == table[1].json()
    assert ResultTable.from_sqlite(store, run=1)[0].body == table[0].body
    table.write(tmp_path / "also.sqlite3")
    assert len(ResultTable.from_sqlite(tmp_path / "also.sqlite3")) == 3
    with pytest.raises(StoreError, match="no such file"):
        ResultTable.from_sqlite(tmp_path / "missing.db")


@pytest.mark.parametrize("case", ["not sqlite", "another program's tables", "locked"])
def test_a_store_it_cannot_use_is_one_line_exit_2_and_left_as_it_was(case, server, tmp_path,
                                                                    child_env):
    store = tmp_path / "runs.db"
    holder = None
    if case == "not sqlite":
        store.write_bytes(b"SQLite format 3\x00 but truncated " * 4)
    elif case == "another program's tables":
        with sqlite3.connect(store) as connection:
            connection.execute("CREATE TABLE rows (a, b)")
    else:
        fetch_all([server.url("/ok")]).to_sqlite(store)
        holder = sqlite3.connect(store, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
    before = store.read_bytes()
    result = subprocess.run([sys.executable, "-m", "batchfetch", server.url("/ok"), "-o", store],
                            capture_output=True, text=True, env=child_env)
    if holder is not None:
        holder.rollback()
        holder.close()
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"Error: {store}: ")
    assert "Traceback" not in result.stderr
    assert store.read_bytes() == before


def test_a_full_disk_is_exit_74_and_the_store_stays_readable(server, tmp_path, child_env):
    """A file size limit stands in for a full disk (SQLite sees EFBIG as a full one)."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    urls = url_file(tmp_path, [server.url(f"/random/5000?seed={n}") for n in range(400)])
    store = tmp_path / "runs.db"
    result = subprocess.run([sys.executable, "-m", "batchfetch", urls, "-o", store, "--body",
                             "-q"], capture_output=True, text=True, env=child_env,
                            preexec_fn=limit)
    assert result.returncode == 74, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"batchfetch: cannot write rows to {store}: disk I/O error"]
    assert query(store, "PRAGMA integrity_check") == [("ok",)]


def test_a_killed_run_keeps_its_committed_rows_and_stays_unfinished(server, tmp_path,
                                                                    child_env):
    urls = url_file(tmp_path, [server.url(f"/delay/0.05?n={n}") for n in range(400)])
    store = tmp_path / "runs.db"
    proc = start([urls, "-o", store, "-c", "4", "-q"], child_env)

    wait_for(rows_committed(store))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert query(store, "PRAGMA integrity_check") == [("ok",)]
    assert query(store, "SELECT finished FROM runs") == [(None,)]
    indexes = [index for (index,) in query(store, 'SELECT "index" FROM rows')]
    assert indexes and len(indexes) == len(set(indexes)) < 400
    with pytest.raises(StoreError, match="no finished run"):
        read_run(store)


def test_transactions_are_bounded(tmp_path):
    from batchfetch.store import RunStore

    store = RunStore(tmp_path / "runs.db")
    store.start()
    for index in range(TRANSACTION_ROWS + 5):
        store.add(FetchResult(index, "http://127.0.0.1/", ok=True, status=200))
    # Before close: what a crash now would leave.
    assert query(tmp_path / "runs.db", "SELECT count(*) FROM rows") == [(TRANSACTION_ROWS,)]
    store.close()
    assert query(tmp_path / "runs.db", "SELECT count(*) FROM rows") == [(TRANSACTION_ROWS + 5,)]


def test_usage_errors_of_a_store(server, tmp_path, child_env):
    result = subprocess.run([sys.executable, "-m", "batchfetch", server.url("/ok"), "-f",
                             "sqlite"], capture_output=True, text=True, env=child_env)
    assert result.returncode == 2
    assert "-f sqlite writes a run store: give it a file, -o runs.db" in result.stderr


def test_resume_after_kill_9_completes_the_unfinished_run_each_input_once(server, tmp_path,
                                                                        child_env):
    urls = url_file(tmp_path, [server.url(f"/delay/0.05?n={n}") for n in range(300)]
                    + ["not a url"])
    store = tmp_path / "runs.db"
    fetch_all([server.url("/ok")]).to_sqlite(store)  # an earlier, finished run
    proc = start([urls, "-o", store, "-c", "4", "-q"], child_env)

    wait_for(rows_committed(store, run=2))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = query(store, "SELECT count(*) FROM rows WHERE run = 2")[0][0]
    result = subprocess.run([sys.executable, "-m", "batchfetch", urls, "-o", store, "--resume",
                             "-c", "8"], capture_output=True, text=True, env=child_env)
    assert result.returncode == 1, result.stderr  # the line that is no URL
    assert f"resume: {before} rows already in run 2 of {store}" in result.stderr
    indexes = [index for (index,) in query(store, 'SELECT "index" FROM rows WHERE run = 2')]
    assert sorted(indexes) == list(range(301))
    assert query(store, "SELECT run, finished IS NOT NULL, total, ok, failed FROM runs") == \
        [(1, 1, 1, 1, 0), (2, 1, 301, 300, 1)]
    # As with a JSON Lines file: resuming a finished run fetches only its failed rows
    # with --retry-failed (here the line that is no URL, which fails again).
    again = subprocess.run([sys.executable, "-m", "batchfetch", urls, "-o", store, "--resume",
                            "--retry-failed"], capture_output=True, text=True, env=child_env)
    assert again.returncode == 1, again.stderr
    assert "resume: 301 rows already in run 2" in again.stderr
    assert "1 failed (fetched again)" in again.stderr and "1 fetched" in again.stderr
    assert query(store, "SELECT run, total, ok, failed FROM runs") == \
        [(1, 1, 1, 0), (2, 301, 300, 1)]
    assert query(store, "SELECT count(*) FROM rows WHERE run = 2") == [(301,)]


def test_resume_refuses_another_input_s_run_and_leaves_it(server, tmp_path):
    store = tmp_path / "runs.db"
    from batchfetch.store import RunStore

    partial = RunStore(store)
    partial.start()
    partial.add(FetchResult(0, server.url("/ok?first"), ok=True, status=200))
    partial.close()  # not finished: as if killed
    before = query(store, "SELECT * FROM rows")
    from batchfetch import ResumeError

    with pytest.raises(ResumeError, match="was written for another input"):
        fetch_all([server.url("/json"), server.url("/ok")], resume=store)
    assert query(store, "SELECT * FROM rows") == before
    table = fetch_all([server.url("/ok?first"), server.url("/json")], resume=store)
    assert [row.status for row in table] == [200, 200]
    assert query(store, "SELECT finished IS NOT NULL, total FROM runs") == [(1, 2)]


def test_ctrl_c_while_resuming_keeps_every_row_it_reported(server, tmp_path, child_env):
    """The rows reported written were dropped: only GeneratorExit kept them, and Ctrl-C
    reaches the rows as GreenletExit."""
    import re

    urls = url_file(tmp_path, [server.url(f"/delay/0.05?n={n}") for n in range(400)])
    store = tmp_path / "runs.db"
    proc = start([urls, "-o", store, "--resume", "-c", "4"], child_env)

    wait_for(rows_committed(store))
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate()
    assert proc.returncode == 130, stderr
    written = int(re.search(r"interrupted: (\d+) rows written", stderr.decode()).group(1))
    assert query(store, 'SELECT count(*), count(DISTINCT "index") FROM rows') == \
        [(written, written)]
    assert query(store, "SELECT finished FROM runs") == [(None,)]


def test_ids_and_options_sqlite_cannot_hold_as_they_are(tmp_path, wait_until):
    import datetime

    import requests.auth

    from batchfetch.store import RunStore

    huge, day = 2**64 - 1, datetime.date(2026, 12, 1)
    table = ResultTable([FetchResult(0, "http://127.0.0.1/", id=huge),
                         FetchResult(1, "http://127.0.0.1/", id=day)])
    options = FetchOptions(auth=requests.auth.HTTPDigestAuth("u", "pw"),
                           headers={"Authorization": "Bearer BEARERX"}, cookies={"s": "C00K"})
    table.to_sqlite(tmp_path / "runs.db", options=options)
    assert [row.id for row in ResultTable.from_sqlite(tmp_path / "runs.db")] == \
        [str(huge), '"2026-12-01"']
    recorded = query(tmp_path / "runs.db", "SELECT options FROM runs")[0][0]
    assert "BEARERX" not in recorded and "C00K" not in recorded and "pw" not in recorded
    # A row is committed a second after it came, without waiting for the next one.
    store = RunStore(tmp_path / "slow.db")
    store.start()
    store.add(FetchResult(0, "http://127.0.0.1/", ok=True))
    wait_until(lambda: query(tmp_path / "slow.db", "SELECT count(*) FROM rows") == [(1,)])
    store.close()


def test_files_a_store_does_not_take_over(server, tmp_path, child_env):
    """An application's database is not a store: no tables or WAL added to it; a refused
    input adds no empty run; a run that is not there is an error, not an empty table."""
    app = tmp_path / "app.db"
    with sqlite3.connect(app) as connection:
        connection.execute("CREATE TABLE users (name)")
    before = app.read_bytes()
    result = subprocess.run([sys.executable, "-m", "batchfetch", server.url("/ok"), "-o", app],
                            capture_output=True, text=True, env=child_env)
    assert result.returncode == 2 and "it holds other tables (users)" in result.stderr
    assert app.read_bytes() == before
    store = tmp_path / "runs.db"
    fetch_all([server.url("/ok")]).to_sqlite(store)
    not_text = tmp_path / "latin1.txt"
    not_text.write_bytes(server.url("/ok").encode() + b"?q=\xe9\n")
    result = subprocess.run([sys.executable, "-m", "batchfetch", not_text, "-o", store],
                            capture_output=True, text=True, env=child_env)
    assert result.returncode == 2, result.stderr
    assert query(store, "SELECT count(*) FROM runs") == [(1,)]
    with pytest.raises(StoreError, match="it holds no run 99"):
        ResultTable.from_sqlite(store, run=99)


def test_a_store_from_before_the_sha256_column_takes_it(tmp_path):
    store = tmp_path / "runs.db"
    ResultTable([FetchResult(0, "http://127.0.0.1/", ok=True, status=200)]).to_sqlite(store)
    with sqlite3.connect(store) as connection:
        connection.execute("ALTER TABLE rows DROP COLUMN sha256")
    assert [row.status for row in read_run(store)] == [200]  # read as it is
    ResultTable([FetchResult(0, "http://127.0.0.1/", ok=True, sha256="ab")]).to_sqlite(store)
    assert query(store, "SELECT run, sha256 FROM rows") == [(1, None), (2, "ab")]
