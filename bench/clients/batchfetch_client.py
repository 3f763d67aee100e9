"""batchfetch: ``fetch_all`` (or ``iter_fetch`` reading the file lazily with --stream).

Options are batchfetch's defaults except ``concurrency`` (and, for the fault
workload, ``deadline``/``retries``; for ``batchfetch_workers``, ``workers``), since its
defaults are what it promises.
"""
import batchfetch  # first: importing batchfetch patches the process with gevent

import time

import common


def main() -> None:
    args = common.parse_args(__doc__)
    options = {"concurrency": args.concurrency, "workers": args.workers}
    if args.retries is not None:
        options["retries"] = args.retries
    if args.deadline is not None:
        options["deadline"] = args.deadline
    tally = common.Tally()
    started = time.perf_counter()
    if args.stream:
        rows = batchfetch.iter_fetch(common.iter_urls(args.url_file), **options)
    else:
        rows = batchfetch.fetch_all(common.read_urls(args.url_file), **options)
    for row in rows:
        tally.attempts += row.attempts
        tally.response(row.status, row.size, "" if row.ok else (row.error or "not ok"))
    elapsed = time.perf_counter() - started
    common.report("batchfetch", tally, elapsed, version=batchfetch.__version__)


if __name__ == "__main__":
    main()
