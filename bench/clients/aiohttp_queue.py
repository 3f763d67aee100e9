"""aiohttp: C worker tasks pulling URLs from a bounded queue, one ClientSession.

``TCPConnector(limit=C)`` caps connections at the concurrency. The queue is fed
lazily from the file, so memory does not grow with the input. With --deadline
the ``ClientTimeout(total=...)`` caps each attempt; with --retries a simple loop
retries transient statuses and errors with exponential backoff.
"""
import asyncio
import time

import aiohttp

import common

BACKOFF = 0.5


async def fetch(session: aiohttp.ClientSession, url: str, retries: int,
                tally: common.Tally) -> None:
    for attempt in range(retries + 1):
        tally.attempts += 1
        last = attempt == retries
        try:
            async with session.get(url) as response:
                body = await response.read()
            if response.status in common.RETRY_STATUSES and not last:
                await asyncio.sleep(BACKOFF * 2 ** attempt)
                continue
            tally.response(response.status, len(body))
            return
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            if last:
                tally.failure(common.describe_exception(exc))
                return
            await asyncio.sleep(BACKOFF * 2 ** attempt)


async def run(args, tally: common.Tally) -> None:
    urls = common.iter_urls(args.url_file) if args.stream else common.read_urls(args.url_file)
    queue: asyncio.Queue = asyncio.Queue(maxsize=2 * args.concurrency)
    timeout = aiohttp.ClientTimeout(total=args.deadline, sock_connect=common.CONNECT_TIMEOUT,
                                    sock_read=common.READ_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def worker() -> None:
            while (url := await queue.get()) is not None:
                await fetch(session, url, args.retries or 0, tally)

        workers = [asyncio.create_task(worker()) for _ in range(args.concurrency)]
        for url in urls:
            await queue.put(url)
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)


def main() -> None:
    args = common.parse_args(__doc__)
    tally = common.Tally()
    started = time.perf_counter()
    asyncio.run(run(args, tally))
    elapsed = time.perf_counter() - started
    common.report("aiohttp", tally, elapsed, version=aiohttp.__version__)


if __name__ == "__main__":
    main()
