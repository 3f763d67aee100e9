"""Issue 17, Python and pandas: a ResultTable as a notebook user expects it, with real runs
against the loopback server."""
import json

import pandas
import pytest

from batchfetch import PANDAS_DTYPES, BodyNotKept, ErrorKind, ResultTable, fetch_all


@pytest.fixture
def table(server):
    urls = [server.url("/json"), server.url("/status/404"), server.url("/status/503"),
            "not a url", server.url("/html"), server.url("/ok"),
            {"url": server.url("/echo"), "method": "POST", "json": {"n": 1}, "id": "a"}]
    return fetch_all(urls, retries=0, keep_body=True)


def test_filters_and_slices_are_tables(table):
    for part in (table.failed, table.succeeded, table[1:3], table.where(ok=False)):
        assert isinstance(part, ResultTable)
        assert part.summary().total == len(part)
        assert len(part.to_pandas()) == len(part)
    assert [row.index for row in table.failed] == [1, 2, 3]
    assert [row.index for row in table[::-2]] == [6, 4, 2, 0]
    assert table[0].status == 200 and len(table) == 7
    assert (table.ok, table.succeeded.ok, table.failed.ok) == (False, True, False)


def test_where_by_error_status_host_and_method(table, server):
    assert [row.index for row in table.where(error="http")] == [1, 2]
    assert [row.index for row in table.where(error=ErrorKind.INVALID_URL)] == [3]
    assert [row.index for row in table.where(status=range(500, 600))] == [2]
    assert [row.index for row in table.where(status=[None])] == [3]
    assert [row.index for row in table.where(status=None)] == [3]  # no response
    assert len(table.where(host="127.0.0.1")) == 6
    assert len(table.where(host=f"127.0.0.1:{server.port}")) == 6
    assert len(table.where(host="example.com")) == 0
    assert [row.index for row in table.where(method="post")] == [6]
    assert [row.index for row in table.where(ok=True, status=200, error="")] == [0, 4, 5, 6]
    with pytest.raises(ValueError, match="'timout' is not an error kind"):
        table.where(error="timout")


def test_repr_shows_the_counts_and_the_first_rows(table):
    lines = repr(table).splitlines()
    assert lines[0] == "<ResultTable 4 ok, 3 failed>"
    assert lines[1].split()[:7] == ["#", "status", "error", "ms", "bytes", "tries", "url"]
    assert [line.split()[0] for line in lines[2:7]] == ["0", "1", "2", "3", "4"]
    assert lines[7] == "... and 2 more rows"
    assert repr(ResultTable([])) == "<ResultTable 0 ok, 0 failed>"
    assert repr(table.summary()) == str(table.summary())
    assert repr(table.summary()).startswith("7 fetched: 4 ok, 3 failed")


def test_html_for_notebooks_escapes_what_it_shows(server):
    table = fetch_all([server.url("/status/404?<b>x</b>")], retries=0)
    markup = table._repr_html_()
    assert markup.startswith("<p>&lt;ResultTable 0 ok, 1 failed&gt;</p><table>")
    assert "&lt;b&gt;x&lt;/b&gt;" in markup and "<b>" not in markup
    assert "<td>404 Not Found</td>" in markup


def test_to_pandas_has_the_types_a_user_expects(table):
    frame = table.to_pandas()
    dtypes = {name: str(dtype) for name, dtype in frame.dtypes.items()}
    assert dtypes["status"] == "Int64" and dtypes["ok"] == "boolean"
    assert dtypes["elapsed"] == "float64" and dtypes["index"] == "int64"
    assert dtypes["url"] == dtypes["message"] == dtypes["path"] == "string"
    assert frame["status"].isna().tolist() == [False, False, False, True, False, False, False]
    assert frame["id"].tolist()[-1] == "a"
    assert frame["body"].iloc[5] == "ok\n"


@pytest.mark.parametrize("name", ["rows.csv", "rows.jsonl"])
def test_read_back_with_pandas_dtypes_gives_the_same_types(table, tmp_path, name):
    path = tmp_path / name
    table.write(str(path))
    if name.endswith(".csv"):
        frame = pandas.read_csv(path, dtype=PANDAS_DTYPES)
    else:
        frame = pandas.read_json(path, lines=True, dtype=PANDAS_DTYPES)
    expected = table.to_pandas()
    for column in ("status", "ok", "elapsed", "url", "error", "path", "id"):
        assert frame[column].dtype == expected[column].dtype, column
    assert frame["status"].isna().tolist() == expected["status"].isna().tolist()


def test_rows_with_bodies_read_as_requests_responses_do(table, server):
    assert json.loads(table[0].content) == table[0].json()
    assert table[5].text == "ok\n" and table[5].content == b"ok\n"
    assert table[6].json()["json"] == {"n": 1}
    with pytest.raises(json.JSONDecodeError):
        table[5].json()
    unkept = fetch_all([server.url("/ok")])[0]
    with pytest.raises(BodyNotKept, match="row 0 .* has no body: a run keeps the bodies .* "
                                          "with keep_body=True"):
        unkept.content
    with pytest.raises(ValueError):
        unkept.text
