"""The distributed engine's benchmark (issue 18): one batchfetch-worker against two on a
latency-bound workload, and what a row costs on the Celery path against the local engine.

    python bench/distributed.py              # 3 rounds, ~4 min; writes RESULTS-distributed.json
    python bench/distributed.py --rounds 1   # a smoke run (does not overwrite the results)

The workload: 4,000 GETs of a loopback server that answers each after 200 ms (its own
process), 50 requests in flight per worker process (``-c 50``, ``--max-in-flight 50``),
chunks of 200. Each round runs the local engine (``concurrency=50`` in this process),
one worker and two workers, in a rotated order; the report takes the medians. CPU is
read from /proc for this process (the driver, or the local engine), the workers and
redis-server; "other CPU" is what the rest of the machine took meanwhile. Then
``bench/RESULTS.md`` is rewritten with the section (``bench/run.py --report-only``).
"""
from __future__ import annotations

import batchfetch  # noqa: F401  (first: it patches the process with gevent)

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import gevent

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)

from harness import procstat  # noqa: E402
from harness.servers import free_port, wait_for_port  # noqa: E402

from batchfetch import fetch_all  # noqa: E402

RESULTS = os.path.join(BENCH_DIR, "RESULTS-distributed.json")
REQUESTS, DELAY, IN_FLIGHT, CHUNK = 4000, 0.2, 50, 200


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_worker(broker: str, name: str, workdir: str) -> subprocess.Popen:
    log_path = os.path.join(workdir, f"{name}.log")
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "batchfetch.cli.worker", "--broker", broker, "--processes",
             "1", "--name", name, "--max-in-flight", str(IN_FLIGHT), "--loglevel", "info"],
            stdout=log, stderr=subprocess.STDOUT)
    while b" ready." not in open(log_path, "rb").read():
        if worker.poll() is not None:
            sys.exit(f"{name} did not start: {log_path}")
        gevent.sleep(0.05)
    return worker


def measure(label: str, urls: list[str], broker: str | None, pids: list[int]) -> dict:
    """One batch; its wall time and the CPU of this process and ``pids``."""
    own = os.getpid()
    before = (time.monotonic(), procstat.cpu_seconds([own]), procstat.cpu_seconds(pids),
              procstat.machine_busy_seconds())
    options = dict(broker=broker, chunk_size=CHUNK) if broker else {}
    table = fetch_all(urls, concurrency=IN_FLIGHT, timeout=30, retries=0, **options)
    wall = time.monotonic() - before[0]
    driver = procstat.cpu_seconds([own]) - before[1]
    others = procstat.cpu_seconds(pids) - before[2]
    busy = procstat.machine_busy_seconds() - before[3]
    ok = sum(1 for row in table if row.ok)
    result = {"label": label, "wall": wall, "ok": ok, "rows": len(table),
              "driver_cpu": driver, "workers_redis_cpu": others,
              "cpu_per_row_ms": (driver + others) / len(urls) * 1000,
              "other_cpu": max(0.0, busy - driver - others)}
    print(f"{label:12} {wall:6.2f} s  ok {ok}/{len(urls)}  cpu/row "
          f"{result['cpu_per_row_ms']:.3f} ms (driver {driver:.2f} s, workers+redis "
          f"{others:.2f} s)  other cpu {result['other_cpu']:.2f} s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed: apt-get install redis-server")
    workdir = tempfile.mkdtemp(prefix="batchfetch-bench-distributed-")
    redis_port, server_port = free_port(), free_port()
    processes = []
    try:
        redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind",
                                  "127.0.0.1", "--save", "", "--appendonly", "no",
                                  "--dir", workdir], stdout=subprocess.DEVNULL)
        server = subprocess.Popen([sys.executable, "-m", "batchfetch.testing", "--port",
                                   str(server_port)], stdout=subprocess.DEVNULL)
        processes += [redis, server]
        wait_for_port(redis_port)
        wait_for_port(server_port)
        broker = f"redis://127.0.0.1:{redis_port}/0"
        first = start_worker(broker, "bench-w1", workdir)
        processes.append(first)
        runs: list[dict] = []
        setups = ["local", "1 worker", "2 workers"]
        for round_number in range(args.rounds):
            rotated = setups[round_number % 3:] + setups[:round_number % 3]
            for setup in rotated:
                urls = [f"http://127.0.0.1:{server_port}/delay/{DELAY}?r={round_number}&n={n}"
                        for n in range(REQUESTS)]
                if setup == "1 worker":
                    runs.append(measure(setup, urls, broker, [first.pid, redis.pid]))
                elif setup == "2 workers":  # the second is started for these runs only
                    second = start_worker(broker, "bench-w2", workdir)
                    try:
                        runs.append(measure(setup, urls, broker,
                                            [first.pid, second.pid, redis.pid]))
                    finally:
                        stop(second)
                else:
                    runs.append(measure(setup, urls, None, []))
    finally:
        for process in processes:
            stop(process)
    summary = {setup: {key: statistics.median(run[key] for run in runs if run["label"] == setup)
                       for key in ("wall", "cpu_per_row_ms", "driver_cpu",
                                   "workers_redis_cpu", "other_cpu")}
               for setup in setups}
    summary["2 workers / 1 worker"] = summary["1 worker"]["wall"] / summary["2 workers"]["wall"]
    print(json.dumps(summary, indent=1))
    if args.rounds >= 3:
        with open(RESULTS, "w", encoding="utf-8") as out:
            json.dump({"runs": runs, "summary": summary, "rounds": args.rounds,
                       "batchfetch": subprocess.run(
                           ["git", "-C", BENCH_DIR, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True).stdout.strip(),
                       "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())},
                      out, indent=1)
        subprocess.run([sys.executable, os.path.join(BENCH_DIR, "run.py"), "--report-only"],
                       check=True)


if __name__ == "__main__":
    main()
