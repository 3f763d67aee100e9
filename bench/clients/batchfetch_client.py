"""batchfetch: ``fetch_all`` (or ``iter_fetch`` reading the file lazily with --stream).

Options are batchfetch's defaults except ``concurrency`` (and, for the fault
workload, ``deadline``/``retries``; for ``batchfetch_workers``, ``workers``; for W9,
``adaptive=True``), since its defaults are what it promises. The options are built
before the clock starts, so a batchfetch that rejects one (``adaptive`` before
issue 14) fails the run at once, saying so, instead of running without it.
"""
import batchfetch  # first: importing batchfetch patches the process with gevent

import resource
import sys
import time

import common


def build_options(args) -> batchfetch.FetchOptions:
    values = {"concurrency": args.concurrency, "workers": args.workers}
    if args.retries is not None:
        values["retries"] = args.retries
    if args.deadline is not None:
        values["deadline"] = args.deadline
    if args.adaptive:
        values["adaptive"] = True
    try:
        return batchfetch.FetchOptions(**values)
    except (TypeError, ValueError) as exc:
        sys.exit(f"batchfetch {batchfetch.__version__} from {batchfetch.__file__} rejects "
                 f"the options {values}: {exc}")


def main() -> None:
    args = common.parse_args(__doc__)
    options = build_options(args)
    tally = common.Tally()
    started = time.perf_counter()
    if args.stream:
        rows = batchfetch.iter_fetch(common.iter_urls(args.url_file), options)
    else:
        rows = batchfetch.fetch_all(common.read_urls(args.url_file), options)
    for row in rows:
        tally.attempts += row.attempts
        tally.response(row.status, row.size, "" if row.ok else (row.error or "not ok"))
    elapsed = time.perf_counter() - started
    # This process alone (with workers: the parent, which reads, hands out and writes):
    # the harness's figure is the whole process tree's.
    own = resource.getrusage(resource.RUSAGE_SELF)
    common.report("batchfetch", tally, elapsed, version=batchfetch.__version__,
                  parent_cpu=round(own.ru_utime + own.ru_stime, 4))


if __name__ == "__main__":
    main()
