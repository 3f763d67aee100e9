"""reqstorm 2.5: ``fetch_all_sync(urls, concurrency="auto", rate_limit="auto")``.

reqstorm's self-pacing mode, the peer for issue 14's workloads (W8-W10). ``"auto"``
concurrency starts at 8 requests in flight, doubles while answers stay healthy and
backs off on 429/502/503/504, timeouts and answers slower than twice a host's normal;
``rate_limit="auto"`` spaces and pauses a host after a 429 (following Retry-After) and
retries 429s up to 10 times. Everything else is reqstorm's default (``retries=0``),
except ``max_concurrency``, set to the harness's --concurrency as every other client's
ceiling is: with its default of 500 it opened 583 connections in W10 and took 4.2 s,
under the 4.75 s that C=200 allows. The same number also bounds reqstorm's workers, which take a
request before waiting for the rate limiter, so the cap changes its pace in W8 though
it never has more than about 8 connections there: 64 s at C=100 against 38 s with 500
(measured; the issue's 1.23x is with the default).

reqstorm has one per-attempt timeout (aiohttp's ``total``, default 30 s) and no
separate connect timeout: ``timeout=30`` is its nearest to the other clients' 10 s
connect / 30 s read. ``fetch_all_sync``, not ``stream_sync``: in 2.5.0 the latter
sizes its queue with ``int(concurrency)`` and so rejects ``"auto"``. Its retries and
pace are its own, so it takes no --retries or --deadline.
"""
import sys
import time

import reqstorm

import common


def main() -> None:
    args = common.parse_args(__doc__)
    if args.retries is not None or args.deadline is not None or args.stream:
        sys.exit("reqstorm_auto keeps reqstorm's own retries and pace and reads a list: "
                 "no --retries, --deadline or --stream")
    tally = common.Tally()
    started = time.perf_counter()
    urls = common.read_urls(args.url_file)
    results = reqstorm.fetch_all_sync(urls, concurrency="auto", rate_limit="auto",
                                      max_concurrency=args.concurrency,
                                      timeout=common.READ_TIMEOUT)
    for result in results:
        common.count_reqstorm_result(tally, result)
    elapsed = time.perf_counter() - started
    common.report("reqstorm_auto", tally, elapsed, version=reqstorm.__version__)


if __name__ == "__main__":
    main()
