"""geventhttpclient, plainly: the gevent floor that a batch fetcher on gevent can reach.

C greenlets (a gevent Pool) each fetch one URL at a time through one ``HTTPClient`` per
origin (its pool sized to the concurrency; a C parser), read the body and count it. No
retries, no redirects, no per-attempt deadline: a loop as locust's FastHttpUser would
drive it, to measure what gevent and a C parser cost per request beside the full clients.
"""
from gevent import monkey

monkey.patch_all(thread=False, select=False)  # as batchfetch and grequests patch

import time  # noqa: E402

import gevent.pool  # noqa: E402
import geventhttpclient  # noqa: E402
from geventhttpclient import HTTPClient  # noqa: E402
from geventhttpclient.url import URL  # noqa: E402

import common  # noqa: E402


def main() -> None:
    args = common.parse_args(__doc__)
    tally = common.Tally()
    clients: dict[tuple[str, int], HTTPClient] = {}

    def fetch(raw: str) -> None:
        tally.attempts += 1
        url = URL(raw)
        client = clients.get((url.host, url.port))
        if client is None:
            client = clients[(url.host, url.port)] = HTTPClient(
                url.host, url.port, concurrency=args.concurrency,
                connection_timeout=common.CONNECT_TIMEOUT, network_timeout=common.READ_TIMEOUT)
        try:
            response = client.get(url.request_uri)
            body = response.read()
            tally.response(response.status_code, len(body))
        except Exception as exc:  # noqa: BLE001 - every failure is counted by kind
            tally.failure(common.describe_exception(exc))

    urls = common.iter_urls(args.url_file) if args.stream else common.read_urls(args.url_file)
    pool = gevent.pool.Pool(args.concurrency)
    started = time.perf_counter()
    for url in urls:
        pool.spawn(fetch, url)
    pool.join()
    elapsed = time.perf_counter() - started
    for client in clients.values():
        client.close()
    common.report("geventhttpclient_plain", tally, elapsed,
                  version=geventhttpclient.__version__)


if __name__ == "__main__":
    main()
