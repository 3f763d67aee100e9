"""The engine seam: the one run loop above every engine, and the Fetcher that owns one."""
import dataclasses

import gevent
import pytest

import batchfetch
from batchfetch import BatchFetchError, FetchOptions, Fetcher, HTTPStatusError, RowError
from batchfetch.engines._runloop import run_rows
from batchfetch.engines.base import RowEvent
from batchfetch.engines.local import LocalEngine


class ForgetfulEngine:
    """A real LocalEngine whose rows are then lost, repeated or stripped of their
    exception, as an engine that ships rows between machines could do."""

    def __init__(self, options, drop=(), repeat=(), strip=False):
        self.local = LocalEngine(options)
        self.drop, self.repeat, self.strip = set(drop), set(repeat), strip

    def run(self, pairs):
        for row, exception, _item in self.local.run(pairs):  # the item does not travel
            if row.index in self.drop:
                continue
            yield RowEvent(row, None if self.strip else exception)
            if row.index in self.repeat:
                yield RowEvent(dataclasses.replace(row, status=299), exception)

    def close(self):
        self.local.close()


def test_an_input_the_engine_never_answers_gets_a_lost_row_and_the_hooks(server):
    """Issue 15: a row for every index that never came back, with kind 'lost'."""
    items = [server.url("/ok"), {"url": server.url("/ok?b"), "id": "b", "method": "HEAD"},
             server.url("/ok?c")]
    engine = ForgetfulEngine(FetchOptions(), drop={1})
    seen, handled = [], []
    rows = list(run_rows(engine, enumerate(items), "GET", seen.append,
                         lambda item, exc: handled.append((item, exc))))
    engine.close()
    assert sorted(row.index for row in rows) == [0, 1, 2]
    lost = rows[-1]
    assert (lost.index, lost.error, lost.ok, lost.id, lost.method) == (1, "lost", False, "b",
                                                                         "HEAD")
    assert lost.url == server.url("/ok?b")
    assert seen == rows
    assert [(item["id"], type(exc), exc.kind) for item, exc in handled] == [("b", RowError,
                                                                            "lost")]


def test_a_second_row_for_an_index_is_dropped_first_row_wins(server):
    engine = ForgetfulEngine(FetchOptions(), repeat={0, 1})
    seen = []
    rows = list(run_rows(engine, enumerate([server.url("/ok"), server.url("/ok?1")]), "GET",
                         seen.append))
    engine.close()
    assert sorted((row.index, row.status) for row in rows) == [(0, 200), (1, 200)]
    assert seen == rows


def test_an_input_that_repeats_an_index_gets_a_row_for_each(server):
    """indexed=True numbering is the caller's: a repeated index is owed a row each time."""
    pairs = [(7, server.url("/ok")), (7, server.url("/status/404")), (8, server.url("/ok"))]
    rows = list(batchfetch.iter_fetch(pairs, indexed=True, retries=0))
    assert sorted((row.index, row.status) for row in rows) == [(7, 200), (7, 404), (8, 200)]


def test_a_failed_row_without_its_exception_gets_one_rebuilt_from_its_kind(server):
    engine = ForgetfulEngine(FetchOptions(retries=0), strip=True)
    handled = []
    list(run_rows(engine, enumerate([server.url("/status/503"), "ftp://x"]), "GET",
                  exception_handler=lambda item, exc: handled.append(exc)))
    engine.close()
    by_type = {type(exc): exc for exc in handled}
    assert by_type[HTTPStatusError].status == 503
    assert by_type[RowError].kind == "invalid_url" and "ftp://x" in str(by_type[RowError])


def test_a_fetcher_keeps_its_connections_between_runs(server):
    with Fetcher(concurrency=1) as fetcher:
        first = fetcher.fetch_all([server.url("/ok")])
        second = fetcher.fetch_all([server.url("/ok?again")])
    assert (first[0].status, second[0].status) == (200, 200)
    assert server.connections_accepted == 1


def test_fetch_all_closes_its_connections_when_it_returns(server, wait_until):
    batchfetch.fetch_all([server.url("/ok")])
    wait_until(lambda: server.open_connections == 0)


def test_a_fetcher_runs_one_batch_at_a_time(server):
    with Fetcher() as fetcher:
        rows = fetcher.iter_fetch([server.url("/delay/0.2")])
        other = gevent.spawn(lambda: next(rows))
        gevent.sleep(0.05)
        with pytest.raises(BatchFetchError, match="one run at a time"):
            next(fetcher.iter_fetch([server.url("/ok")]))
        assert other.get().status == 200
        rows.close()
        assert fetcher.fetch_all([server.url("/ok")])[0].ok  # free again


def test_a_fetcher_validates_its_options_when_made():
    with pytest.raises(batchfetch.OptionError, match="concurrency"):
        Fetcher(concurrency=0)


def test_the_public_surface_is_all():
    public = {name for name in dir(batchfetch) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(batchfetch, name)).__name__ == "module"}
    assert public - modules == set(batchfetch.__all__) - {"__version__"}


def test_closing_a_fetcher_cancels_a_run_in_progress(server):
    """Review of issue 15: a Fetcher closed while its iterator was paused kept fetching in
    the background, on a session nobody would close."""
    fetcher = Fetcher(concurrency=2)
    rows = fetcher.iter_fetch([server.url("/ok")] + [server.url("/delay/0.05")] * 40)
    assert next(rows).status == 200
    fetcher.close()
    gevent.sleep(0.1)  # requests already on their way when it closed still arrive
    sent = server.hits.get("/delay/0.05", 0)
    gevent.sleep(0.3)  # long enough for several more requests, had the run gone on
    assert server.hits.get("/delay/0.05", 0) == sent < 40
    rows.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_inputs_that_repeat_an_index_each_get_their_own_row_and_item(server, workers):
    """Review of issue 15: with a repeated index, hooks got the first item still owed for
    it, not the one the row answers; with workers=2 the run raised KeyError."""
    slow, fast = server.url("/delay/0.3"), server.url("/status/404")
    pairs = [(7, slow), (8, server.url("/ok")), (7, fast), (7, ""), (9, ""), (7, "")]
    handled = []
    rows = list(batchfetch.iter_fetch(pairs, indexed=True, retries=0, workers=workers,
                                      exception_handler=lambda item, exc: handled.append(
                                          (item, type(exc).__name__))))
    assert sorted((row.index, row.status or 0, row.error) for row in rows) == [
        (7, 0, "invalid_url"), (7, 0, "invalid_url"), (7, 200, ""), (7, 404, "http"),
        (8, 200, ""), (9, 0, "invalid_url")]
    assert sorted(handled) == [("", "InvalidItemError")] * 3 + [(fast, "HTTPStatusError")]
