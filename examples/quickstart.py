"""Fetch a small mixed batch from the bundled loopback server and print the table.

Shows the Python API end to end, offline: plain URLs and a POST API call with a
JSON body and an ``id``, failures as rows (a 404, a refused port, a bad URL),
the summary, and the failed rows.

Run it with ``python examples/quickstart.py`` (no network needed).
"""
import batchfetch  # first: batchfetch patches the process with gevent

from batchfetch import fetch_all
from batchfetch.testing import LoopbackServer, refused_url


def main() -> int:
    with LoopbackServer() as server:
        items = [
            server.url("/html"),
            server.url("/json"),
            server.url("/delay/0.2"),
            server.url("/redirect/2"),
            server.url("/status/404"),
            {"method": "POST", "url": server.url("/echo"), "json": {"op": "add", "args": [1, 2]},
             "id": 7},
            refused_url("/refused"),
            "not a url",
        ]
        table = fetch_all(items, concurrency=4, timeout=5, retries=0)
        print(table)
        print()
        print(table.summary())
        print()
        for row in table.failed:
            print(row.index, row.url, row.error, row.message)
    return 0 if len(table) == len(items) else 1


if __name__ == "__main__":
    raise SystemExit(main())
