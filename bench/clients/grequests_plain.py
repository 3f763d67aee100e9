"""grequests.map with no shared session: the common pattern from tutorials and answers.

Every request gets its own ``requests.Session`` (so its own connection), and
``map`` holds every response until the end. With --retries, failed URLs are
mapped again, which is the retry such a script can do simply.
"""
import grequests  # first: importing grequests patches the process with gevent

import time

import common


def keep_exception(request, exception):
    """map() puts this in the response's place: the failure's kind, not a bare None."""
    return exception


def main() -> None:
    args = common.parse_args(__doc__)
    tally = common.Tally()
    started = time.perf_counter()
    urls = common.read_urls(args.url_file)
    timeout = (common.CONNECT_TIMEOUT, common.READ_TIMEOUT)
    pending = urls
    for attempt in range(1 + (args.retries or 0)):
        responses = grequests.map((grequests.get(url, timeout=timeout) for url in pending),
                                  size=args.concurrency,
                                  exception_handler=keep_exception)
        last = attempt == (args.retries or 0)
        retry = []
        for url, response in zip(pending, responses):
            tally.attempts += 1
            failed = isinstance(response, BaseException) or response.status_code >= 300
            if failed and not last:
                retry.append(url)
            elif isinstance(response, BaseException):
                tally.failure(common.describe_exception(response))
            else:
                tally.response(response.status_code, len(response.content))
        pending = retry
        if not pending:
            break
    elapsed = time.perf_counter() - started
    common.report("grequests_plain", tally, elapsed)


if __name__ == "__main__":
    main()
