"""reqstorm 2.5 at a fixed concurrency: ``stream_sync(urls, concurrency=C)``.

reqstorm as a batch script uses it: aiohttp under one shared connector, C requests in
flight, its defaults otherwise (no retries, no rate limit). It reads the URL list
lazily with ``stream_sync`` and yields results as they complete, so it also runs the
streaming workloads. ``timeout`` is its one per-attempt timeout (aiohttp's ``total``): 30 s,
the nearest to the other clients' 10 s connect / 30 s read, or the workload's deadline. W8-W10 use its
self-pacing mode instead (``reqstorm_auto.py``).
"""
import time

import reqstorm

import common


def main() -> None:
    args = common.parse_args(__doc__)
    # Its one timeout caps each attempt as a whole: the per-attempt deadline, when given.
    options = {"concurrency": args.concurrency,
               "timeout": args.deadline if args.deadline is not None else common.READ_TIMEOUT}
    if args.retries is not None:
        options["retries"] = args.retries
    tally = common.Tally()
    started = time.perf_counter()
    urls = common.iter_urls(args.url_file) if args.stream else common.read_urls(args.url_file)
    for result in reqstorm.stream_sync(urls, **options):
        common.count_reqstorm_result(tally, result)
    elapsed = time.perf_counter() - started
    common.report("reqstorm_fixed", tally, elapsed, version=reqstorm.__version__)


if __name__ == "__main__":
    main()
