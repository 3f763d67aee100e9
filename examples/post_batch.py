"""POST a batch of API calls with different JSON bodies, and get each response body back.

Shows: request specs read from ``examples/api_calls.jsonl`` (method, JSON or form body,
headers, params and an ``id`` per call), ``keep_body=True``, and the rows written as JSON
Lines with their bodies, the same rows ``batchfetch --body api_calls.jsonl`` prints.
Each row's ``id`` says which call it answers, whatever order the calls complete in.

Runs offline by default: the calls go to the bundled loopback server, whose ``/echo``
answers with what it received. To send them to your own API instead, give the base URL
that replaces the file's placeholder ``http://127.0.0.1:8000``::

    python examples/post_batch.py
    python examples/post_batch.py --base-url https://api.example.com
"""
import batchfetch  # first: batchfetch patches the process with gevent

import argparse
import json
import sys
from pathlib import Path

from batchfetch import fetch_all
from batchfetch.testing import LoopbackServer
from batchfetch.writers import writer_for

CALLS = Path(__file__).with_name("api_calls.jsonl")
PLACEHOLDER = "http://127.0.0.1:8000"


def load_calls(base_url: str) -> list:
    """The request specs of api_calls.jsonl, pointed at ``base_url``."""
    calls = []
    for line in CALLS.read_text().splitlines():
        if line.strip():
            call = json.loads(line)
            call["url"] = call["url"].replace(PLACEHOLDER, base_url.rstrip("/"))
            calls.append(call)
    return calls


def post_batch(base_url: str, echo: bool = False) -> int:
    """Send every call to ``base_url``; print rows (with bodies) as JSON Lines on stdout."""
    calls = load_calls(base_url)
    table = fetch_all(calls, concurrency=8, timeout=10, keep_body=True)
    writer = writer_for("jsonl", sys.stdout, include_body=True)
    for row in table:  # input order; iter_fetch would give completion order
        writer.write(row)
    writer.close()
    print(table.summary(), file=sys.stderr)
    if echo:  # the loopback /echo answers with what it received: show it per id
        for row in table.succeeded:
            received = json.loads(row.body)
            body = received["json"] if received["json"] is not None else received["body"]
            print(f"{row.id}: {row.method} {row.status}, received {body}", file=sys.stderr)
    return 0 if len(table.succeeded) == len(calls) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help=f"replaces {PLACEHOLDER} in api_calls.jsonl "
                                           "(default: a loopback server, offline)")
    args = parser.parse_args()
    if args.base_url:
        return post_batch(args.base_url)
    with LoopbackServer() as server:
        return post_batch(server.base_url, echo=True)


if __name__ == "__main__":
    raise SystemExit(main())
