"""A batch on two batchfetch-worker processes through a Redis on this machine: what
``--broker`` does across machines, seen on one before renting any.

It starts redis-server on a free loopback port, the loopback test server and two workers
(``batchfetch-worker --broker redis://127.0.0.1:PORT/0``), fetches 400 URLs through them
with ``fetch_all(urls, broker=...)``, kills one worker with SIGKILL halfway through, and
shows that every input still has exactly one row. Then it stops everything it started,
by pid.

Needs redis-server (``apt-get install redis-server``) and the celery extra
(``pip install -e '.[celery]'``). Run it with::

    python examples/cluster/run.py
"""
import batchfetch  # first: it patches the process with gevent

import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import gevent

from batchfetch import fetch_all
from batchfetch.testing import LoopbackServer


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_redis(directory: str) -> tuple[subprocess.Popen, str]:
    executable = shutil.which("redis-server")
    if executable is None:
        sys.exit("redis-server is not installed: apt-get install redis-server")
    port = free_port()
    redis = subprocess.Popen([executable, "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", directory],
                             stdout=subprocess.DEVNULL)
    while True:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return redis, f"redis://127.0.0.1:{port}/0"
        except OSError:
            gevent.sleep(0.05)


def start_worker(broker: str, name: str, log_path: str) -> subprocess.Popen:
    """``batchfetch-worker`` (run as ``python -m`` so this interpreter's install is used)."""
    log = open(log_path, "wb")
    worker = subprocess.Popen([sys.executable, "-m", "batchfetch.cli.worker", "--broker", broker,
                               "--processes", "1", "--name", name, "--max-in-flight", "25",
                               "--loglevel", "info"], stdout=log, stderr=subprocess.STDOUT)
    while b" ready." not in open(log_path, "rb").read():
        if worker.poll() is not None:
            sys.exit(f"worker {name} did not start: see {log_path}")
        gevent.sleep(0.05)
    return worker


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> None:
    # The driver's warnings: here, the lease of the killed worker lapsing.
    logging.basicConfig(format="%(name)s: %(message)s", level=logging.WARNING)
    directory = tempfile.mkdtemp(prefix="batchfetch-cluster-")
    redis, broker = start_redis(directory)
    workers = []
    try:
        with LoopbackServer() as server:
            workers = [start_worker(broker, name, f"{directory}/{name}.log")
                       for name in ("worker-1", "worker-2")]
            print(f"redis-server at {broker}; two workers; logs in {directory}")
            urls = [server.url(f"/delay/0.05?n={n}") for n in range(380)]
            urls += [server.url("/status/404")] * 10 + ["not a url"] * 10

            def kill_one_worker_halfway(row):
                if kill_one_worker_halfway.rows == 200:
                    print("row 200: kill -9 worker-1 (its chunks come back once its lease "
                          "lapses)")
                    workers[0].send_signal(signal.SIGKILL)
                kill_one_worker_halfway.rows += 1

            kill_one_worker_halfway.rows = 0
            started = time.monotonic()
            table = fetch_all(urls, broker=broker, chunk_size=20, concurrency=25, lease=3,
                              on_result=kill_one_worker_halfway)
            took = time.monotonic() - started
            indexes = [row.index for row in table]
            print(f"{len(table)} rows for {len(urls)} inputs in {took:.1f} s; each index "
                  f"once: {indexes == list(range(len(urls)))}")
            print(table.summary())
            print("The same from the command line:\n"
                  f"    batchfetch urls.txt --broker {broker} -o rows.jsonl")
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            stop(worker)
        stop(redis)


if __name__ == "__main__":
    main()
