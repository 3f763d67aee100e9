"""Rows into a SQLite store against JSON Lines (issue 19): the command's wall time and CPU
with ``-o rows.db`` and ``-o rows.jsonl``, on the same fast batch.

    python bench/store_write.py                   # 5 rounds, alternating; ~1 min
    python bench/store_write.py --requests 50000 --rounds 3

The batch: REQUESTS GETs of nginx's W1 kind of answer (a small body, at once) from the
loopback test server in its own process, ``-c 50``, bodies not kept. Each round runs both
outputs, the order alternating; the report takes the medians. CPU is the command's own
(user + system, from ``resource.getrusage`` of its child), so the server's time does not
count. With 3 rounds or more, writes RESULTS-store.json and rewrites bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)

from harness.servers import free_port, wait_for_port  # noqa: E402


def run_once(urls: str, output: str) -> tuple[float, float]:
    """Wall seconds and CPU seconds of one ``batchfetch URLS -o OUTPUT``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "batchfetch", urls, "-o", output, "-c", "50", "-q"],
                   check=False, stdin=subprocess.DEVNULL)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="batchfetch-bench-store-")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "batchfetch.testing", "--port", str(port)],
                              stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        urls = os.path.join(workdir, "urls.txt")
        with open(urls, "w") as out:
            out.writelines(f"http://127.0.0.1:{port}/ok?n={n}\n" for n in range(args.requests))
        results: dict[str, list[tuple[float, float]]] = {"jsonl": [], "sqlite": []}
        for round_number in range(args.rounds):
            order = ["jsonl", "sqlite"] if round_number % 2 == 0 else ["sqlite", "jsonl"]
            for name in order:
                output = os.path.join(workdir, f"rows-{round_number}." +
                                      ("jsonl" if name == "jsonl" else "db"))
                results[name].append(run_once(urls, output))
                print(f"round {round_number} {name:6} wall {results[name][-1][0]:.2f} s  "
                      f"cpu {results[name][-1][1]:.2f} s", flush=True)
    finally:
        server.terminate()
        server.wait()
    print(f"\n| {args.requests} GETs, -c 50, medians of {args.rounds} | wall | CPU | CPU per row |")
    print("|---|---|---|---|")
    for name, runs in results.items():
        wall = statistics.median(run[0] for run in runs)
        cpu = statistics.median(run[1] for run in runs)
        print(f"| -o rows.{'jsonl' if name == 'jsonl' else 'db'} | {wall:.2f} s | {cpu:.2f} s | "
              f"{cpu / args.requests * 1e6:.0f} us |")
    jsonl = statistics.median(run[1] for run in results["jsonl"])
    sqlite = statistics.median(run[1] for run in results["sqlite"])
    print(f"\nSQLite's CPU against JSON Lines': {sqlite / jsonl:.3f}x (target: within 1.10x)")
    if args.rounds >= 3:
        summary = {("jsonl" if name == "jsonl" else "db"): {
            "wall": statistics.median(run[0] for run in runs),
            "cpu": statistics.median(run[1] for run in runs)} for name, runs in results.items()}
        with open(os.path.join(BENCH_DIR, "RESULTS-store.json"), "w", encoding="utf-8") as out:
            json.dump({"requests": args.requests, "rounds": args.rounds, "summary": summary,
                       "runs": results, "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                              time.gmtime()),
                       "batchfetch": subprocess.run(
                           ["git", "-C", BENCH_DIR, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True).stdout.strip()}, out, indent=1)
        subprocess.run([sys.executable, os.path.join(BENCH_DIR, "run.py"), "--report-only"],
                       check=True)


if __name__ == "__main__":
    main()
