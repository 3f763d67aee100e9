"""grequests.map over one shared requests.Session whose adapter is sized to the concurrency.

The tuned grequests setup: ``HTTPAdapter(pool_connections=..., pool_maxsize=C)`` so
urllib3 keeps one connection per concurrent request instead of discarding them.
With --retries, the adapter gets urllib3 ``Retry`` on the usual transient statuses.
"""
import grequests  # first: importing grequests patches the process with gevent

import time

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

import common


def build_session(args) -> requests.Session:
    retries = 0
    if args.retries:
        retries = Retry(total=args.retries, backoff_factor=0.5,
                        status_forcelist=common.RETRY_STATUSES)
    adapter = HTTPAdapter(pool_connections=max(10, args.hosts), pool_maxsize=args.concurrency,
                          max_retries=retries)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def keep_exception(request, exception):
    """map() puts this in the response's place: the failure's kind, not a bare None."""
    return exception


def main() -> None:
    args = common.parse_args(__doc__)
    tally = common.Tally()
    session = build_session(args)
    timeout = (common.CONNECT_TIMEOUT, common.READ_TIMEOUT)
    started = time.perf_counter()
    urls = common.read_urls(args.url_file)
    responses = grequests.map((grequests.get(url, session=session, timeout=timeout)
                               for url in urls), size=args.concurrency,
                               exception_handler=keep_exception)
    for response in responses:
        if isinstance(response, BaseException):
            tally.failure(common.describe_exception(response))
        else:
            tally.response(response.status_code, len(response.content))
    elapsed = time.perf_counter() - started
    session.close()
    common.report("grequests_session", tally, elapsed)


if __name__ == "__main__":
    main()
