"""The public way in: :func:`fetch_all` and :func:`iter_fetch` open a :class:`Fetcher`
for one run and delegate to it, as ``requests.get`` opens a Session.

A Fetcher resolves the options once, picks the engine they call for (this process,
or ``workers`` processes) and owns it; in this process, its connections serve every
run made through it.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .config import FetchOptions
from .engines._runloop import run_rows
from .engines.base import Engine, ExceptionHandler, OnResult
from .engines.local import LocalEngine
from .engines.processes import ProcessEngine
from .inputs import RequestSpec
from .results import FetchResult
from .resume import RecordedRows
from .table import ResultTable

__all__ = ["Fetcher", "fetch_all", "iter_fetch"]

#: What ``resume=`` takes: the rows file's path, or its rows read already (None: no file).
Resume = str | os.PathLike[str] | RecordedRows | None


def _build_options(options: FetchOptions | None, overrides: dict[str, Any]) -> FetchOptions:
    if options is None:
        return FetchOptions(**overrides)
    if not isinstance(options, FetchOptions):
        raise TypeError(f"options must be a FetchOptions, got {type(options).__name__}")
    return options.replace(**overrides) if overrides else options


def _check_items(items: Any, called: str) -> None:
    """Refuse one URL or one spec where a batch of them belongs: a str is iterable, and
    fetched character by character it gave one failed row per character."""
    if isinstance(items, (str, bytes, bytearray)):
        raise TypeError(f"items must be an iterable of URLs or request specs, not a single "
                        f"{type(items).__name__}: pass a list, e.g. {called}([url])")
    if isinstance(items, (Mapping, RequestSpec)):
        raise TypeError(f"items must be an iterable of URLs or request specs, not a single "
                        f"{type(items).__name__}: pass a list, e.g. {called}([spec])")
    if not isinstance(items, Iterable):
        raise TypeError(f"items must be an iterable of URLs or request specs, got "
                        f"{type(items).__name__}")


def engine_for(options: FetchOptions) -> Engine:
    """The engine ``options`` call for: the workers of ``broker`` when it is set, this
    process and worker processes when ``workers > 1``, else this process."""
    if options.broker is not None:
        from .engines.distributed import DistributedEngine  # Celery only when asked for

        return DistributedEngine(options)
    return ProcessEngine(options) if options.workers > 1 else LocalEngine(options)


class Fetcher:
    """Runs batches with one set of options over one engine and its session.

    The options are fixed when the Fetcher is made (the session, its pools and the
    limits derive from them): for other options, make another Fetcher. Runs go one at
    a time and, in this process (``workers=1``), reuse the session's keep-alive
    connections, as calls on one ``requests.Session`` do (no cookie is kept from one
    response for another request, within a run or across runs). With ``workers > 1``
    each run starts its own worker processes. Close it (or use ``with``) to close its
    connections; closing it during a run cancels that run.

    Example::

        >>> with Fetcher(concurrency=4, timeout=10) as fetcher:
        ...     first = fetcher.fetch_all(["http://127.0.0.1:8000/ok"])
        ...     second = fetcher.fetch_all(["http://127.0.0.1:8000/ok?again"])
        >>> first[0].status, second[0].status
        (200, 200)
    """

    def __init__(self, options: FetchOptions | None = None, **option_values: Any) -> None:
        self.options = _build_options(options, option_values)
        self.engine = engine_for(self.options)

    def iter_fetch(self, items: Iterable[Any], *, on_result: OnResult | None = None,
                   exception_handler: ExceptionHandler | None = None,
                   indexed: bool = False, resume: Resume = None,
                   retry_failed: bool = False) -> Iterator[FetchResult]:
        """Yield one row per item as each completes; see :func:`batchfetch.iter_fetch`."""
        _check_items(items, "iter_fetch")
        if resume is not None and self.options.changed_only:
            raise ValueError("changed_only=True does not go with resume=: resuming finds what "
                             "is left by the rows in the file, and changed_only leaves rows "
                             "out")
        recorded = self._recorded_rows(resume, retry_failed)
        if recorded is not None and self.options.since is not None \
                and recorded.format.name != "sqlite" and os.path.exists(recorded.path) \
                and os.path.exists(self.options.since) \
                and os.path.samefile(recorded.path, self.options.since):
            raise ValueError(f"since= and resume= both name {recorded.path}: the rows "
                             "appended would be compared with themselves")
        pairs = iter(items) if indexed else enumerate(items)
        if recorded is not None:
            pairs = recorded.unrecorded(pairs)
        changes = None
        if self.options.since is not None:
            from .changes import Changes  # sqlite3 only for a run that compares

            changes = Changes(self.options)  # the previous output, indexed now
        rows = run_rows(self.engine, pairs, self.options.method, on_result,
                        exception_handler, changes)
        if changes is not None:
            rows = _closing_after(rows, changes)
        return rows if recorded is None else recorded.appending(rows)

    def fetch_all(self, items: Iterable[Any], *, on_result: OnResult | None = None,
                  exception_handler: ExceptionHandler | None = None,
                  indexed: bool = False, resume: Resume = None,
                  retry_failed: bool = False) -> ResultTable:
        """Every item's row in input order; see :func:`batchfetch.fetch_all`."""
        _check_items(items, "fetch_all")
        recorded = self._recorded_rows(resume, retry_failed)
        kept = list(recorded.kept_rows()) if recorded is not None else []
        started = time.monotonic()
        rows = list(self.iter_fetch(items, on_result=on_result,
                                    exception_handler=exception_handler, indexed=indexed,
                                    resume=recorded))
        return ResultTable(kept + rows, wall_time=time.monotonic() - started,
                           **self.options.record_shape)

    def _recorded_rows(self, resume: Resume, retry_failed: bool) -> RecordedRows | None:
        """The rows file ``resume`` names, read; None without one."""
        if resume is None:
            if retry_failed:
                raise ValueError("retry_failed=True goes with resume=FILE, the rows file "
                                 "whose failed rows it fetches again")
            return None
        if not isinstance(resume, RecordedRows):  # a csv or jsonl file, or a run store
            from .store import open_recorded  # sqlite3 only for a run that resumes

            return open_recorded(resume, include_body=self.options.keep_body,
                                 retry_failed=retry_failed, options=self.options,
                                 **self.options.record_shape)
        if retry_failed and not resume.retry_failed:
            raise ValueError("resume= is a RecordedRows made without retry_failed: give "
                             "retry_failed=True to RecordedRows instead")
        if resume.include_body != self.options.keep_body:
            raise ValueError(f"resume= is a RecordedRows with include_body="
                             f"{resume.include_body}, but keep_body={self.options.keep_body}")
        shape = {"headers": False, "header_columns": (), **resume.shape}
        if shape != self.options.record_shape:
            raise ValueError(f"resume= is a RecordedRows for {shape}, but these options write "
                             f"{self.options.record_shape}: give RecordedRows "
                             f"**options.record_shape")
        return resume

    @property
    def in_flight(self) -> int | None:
        """Requests in flight now (with worker processes, each worker's as of its latest
        row), or None from an engine that cannot tell."""
        return getattr(self.engine, "in_flight", None)

    def close(self) -> None:
        """Close the engine's session and connections."""
        self.engine.close()

    def __enter__(self) -> "Fetcher":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def iter_fetch(items: Iterable[Any], options: FetchOptions | None = None, *,
               on_result: OnResult | None = None,
               exception_handler: ExceptionHandler | None = None,
               indexed: bool = False, resume: Resume = None, retry_failed: bool = False,
               **option_values: Any) -> Iterator[FetchResult]:
    """Fetch ``items`` and yield one row per item as each completes (completion order).

    ``items`` is any iterable of URL strings, request-spec dicts or
    :class:`RequestSpec` (a single str, bytes, dict or RequestSpec raises TypeError);
    it is pulled lazily, at most ``max_pending`` items ahead of the rows yielded.
    Options come as a :class:`FetchOptions`, as keywords (``concurrency=50``), or
    both (keywords win); they are validated here, before the first ``next()``.
    Closing the iterator (a ``break``) cancels in-flight requests and closes the
    session.

    ``on_result(row)`` runs for every row and ``exception_handler(item, exc)``
    once per failed row, in the caller's greenlet, before the row is yielded;
    an exception raised by either stops the run and propagates.

    With ``indexed=True`` the items are ``(index, item)`` pairs and each row carries
    the given index instead of the item's position: for resuming a numbered input
    where some items are skipped (saved bodies keep their names too).

    ``resume`` (``--resume -o FILE``) names a csv or jsonl rows file (format by its
    suffix) that this run completes: the inputs that have a row there are not fetched
    again (failed ones included, unless ``retry_failed``, ``--retry-failed``); the others
    are fetched, and each row is appended to the file before it is yielded (only those
    rows are yielded). A missing file is started, so running the same call again after
    an interruption fetches just what is left. The file is read here, before the first
    ``next()`` (:class:`~batchfetch.resume.ResumeError` if it is not rows batchfetch
    wrote). ``items`` must be the input that wrote it: a row whose url is not its
    input's, or rows past the input's end, raise ResumeError before anything is
    fetched and leave the file as it was. ``retry_failed`` rewrites the file without
    its failed rows, atomically, once the input is known to match. A write that fails
    raises :class:`~batchfetch.errors.OutputError`. ``resume`` may also be a
    :class:`~batchfetch.resume.RecordedRows` (a file of another suffix, read already).

    ``since`` (an option, ``--since``) names an earlier run's output to compare with: it
    is read here, before the first ``next()`` (:class:`~batchfetch.errors.SinceError` if
    it cannot be), and each row's ``change`` says what changed (:mod:`batchfetch.changes`).

    Example::

        >>> for row in iter_fetch(["http://127.0.0.1:8000/ok"], concurrency=4):
        ...     print(row.index, row.status)
        0 200
    """
    _check_items(items, "iter_fetch")
    fetcher = Fetcher(options, **option_values)
    try:
        rows = fetcher.iter_fetch(items, on_result=on_result,
                                  exception_handler=exception_handler, indexed=indexed,
                                  resume=resume, retry_failed=retry_failed)
    except BaseException:
        fetcher.close()
        raise
    return _closing(fetcher, rows)


def _closing_after(rows: Iterator[FetchResult], changes: Any) -> Iterator[FetchResult]:
    """``rows``, then the previous run's index dropped (also when the caller stops)."""
    try:
        yield from rows
    finally:
        try:
            rows.close()
        finally:
            changes.close()


def _closing(fetcher: Fetcher, rows: Iterator[FetchResult]) -> Iterator[FetchResult]:
    """``rows``, then the fetcher closed (also when the caller stops early)."""
    try:
        yield from rows
    finally:
        rows.close()
        fetcher.close()


def fetch_all(items: Iterable[Any], options: FetchOptions | None = None, *,
              on_result: OnResult | None = None,
              exception_handler: ExceptionHandler | None = None,
              indexed: bool = False, resume: Resume = None, retry_failed: bool = False,
              **option_values: Any) -> ResultTable:
    """Fetch every item and return a :class:`ResultTable` in input order.

    Takes the same arguments as :func:`iter_fetch`. Failures are rows with an
    ``error`` kind, not exceptions; call ``table.raise_for_errors()`` to raise.

    With ``resume``, the table holds one row per input all the same: the rows kept
    from the file (read back with :meth:`FetchResult.from_record`) and the rows fetched
    now, which are also appended to the file; so it is the table a run without
    interruption would have returned, and its summary counts the kept rows too.

    Example::

        >>> table = fetch_all(["http://127.0.0.1:8000/ok", "not a url"], timeout=10)
        >>> len(table.succeeded), table[1].error
        (1, 'invalid_url')
    """
    _check_items(items, "fetch_all")
    with Fetcher(options, **option_values) as fetcher:
        return fetcher.fetch_all(items, on_result=on_result,
                                 exception_handler=exception_handler, indexed=indexed,
                                 resume=resume, retry_failed=retry_failed)
