"""requests on a ThreadPoolExecutor(C) with one Session per thread (threading.local).

No gevent here: real OS threads. Each thread's adapter keeps a pool for every host
in the file (``pool_connections``); one connection per host suffices because a
thread has one request in flight. With --retries, urllib3 ``Retry`` on the adapter.
"""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

import common


def main() -> None:
    args = common.parse_args(__doc__)
    local = threading.local()
    timeout = (common.CONNECT_TIMEOUT, common.READ_TIMEOUT)

    def session() -> requests.Session:
        current = getattr(local, "session", None)
        if current is None:
            retries = 0
            if args.retries:
                retries = Retry(total=args.retries, backoff_factor=0.5,
                                status_forcelist=common.RETRY_STATUSES)
            adapter = HTTPAdapter(pool_connections=max(10, args.hosts), pool_maxsize=1,
                                  max_retries=retries)
            current = local.session = requests.Session()
            current.mount("http://", adapter)
            current.mount("https://", adapter)
        return current

    def fetch(url: str):
        try:
            response = session().get(url, timeout=timeout)
            return response.status_code, len(response.content), ""
        except requests.RequestException as exc:
            return None, 0, common.describe_exception(exc)

    tally = common.Tally()
    started = time.perf_counter()
    urls = common.read_urls(args.url_file)
    with ThreadPoolExecutor(max_workers=args.concurrency) as executor:
        for status, size, error in executor.map(fetch, urls):
            tally.response(status, size, error)
    elapsed = time.perf_counter() - started
    common.report("requests_threads", tally, elapsed)


if __name__ == "__main__":
    main()
