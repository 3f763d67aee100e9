"""Re-running a batch with ``--since`` (issue 19) against nginx's static files, which
answer If-None-Match and If-Modified-Since with 304 by themselves.

    python bench/since.py                             # 10,000 files, 1,000,000-row PREV; ~2 min
    python bench/since.py --files 2000 --prev-rows 100000 --rounds 1

1. FILES files of 16 KiB; ``batchfetch URLS --hash -o first.jsonl``, then
   ``batchfetch URLS --since first.jsonl -o second.jsonl``: every row must be ``same``, the
   body bytes nginx sent (``$body_bytes_sent`` in its access log) at most 5% of the first
   run's, and the wall time no longer. The same with a store: ``-o runs.db``, then
   ``-o runs.db --since runs.db``. ROUNDS rounds, medians.
2. A tenth of the files changed (new bytes, and an mtime 10 s on, since nginx's
   validators count whole seconds): ``--since second.jsonl`` must say ``changed`` for
   exactly those rows.
3. Memory: the same URLS with ``--since`` a PREV of PREV_ROWS rows (FILES of them match)
   against no ``--since``: the command's peak RSS (``wait4``'s ru_maxrss) may grow by at
   most 30 MB.

Each command's own wall time, CPU and peak RSS come from ``os.wait4`` on its pid. nginx is
the harness's (bench/harness/servers.py), with an access log, stopped by its pid file.
Writes RESULTS-since.json and rewrites bench/RESULTS.md when every round ran (ROUNDS >= 3).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)

from harness.servers import Nginx  # noqa: E402

FILE_SIZE = 16 * 1024
class LoggedNginx(Nginx):
    """The harness's nginx with an access log of status and body bytes per request,
    serving the files of ``www`` in its directory."""

    def __init__(self, workdir: str) -> None:
        super().__init__(workdir, access_log=True)
        self.www = os.path.join(self.dir, "www")

    def log_size(self) -> int:
        return os.path.getsize(self.log) if os.path.exists(self.log) else 0

    def sent_since(self, offset: int) -> tuple[int, int, int]:
        """(requests, 304s, body bytes) logged after ``offset``."""
        with open(self.log, "rb") as handle:
            handle.seek(offset)
            statuses = [line.split() for line in handle.read().splitlines()]
        return (len(statuses), sum(status == b"304" for status, _ in statuses),
                sum(int(sent) for _, sent in statuses))


def command(args: list[str]) -> dict[str, float]:
    """Run ``batchfetch ARGS``: its wall time, CPU seconds, peak RSS (MiB) and exit code."""
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "batchfetch", *args, "-q"],
                               stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {"wall": time.monotonic() - started, "cpu": usage.ru_utime + usage.ru_stime,
            "rss_mib": usage.ru_maxrss / 1024, "code": process.returncode}


def changes_in(path: str) -> dict[int, str]:
    with open(path, encoding="utf-8") as handle:
        return {row["index"]: row["change"] for row in map(json.loads, handle)}


def stored_changes(store: str) -> set[str]:
    """The change kinds of a store's latest run."""
    with sqlite3.connect(store) as connection:
        return {kind for (kind,) in connection.execute(
            "SELECT DISTINCT change FROM rows WHERE run = (SELECT max(run) FROM runs)")}


def write_files(www: str, count: int, rng: random.Random) -> None:
    for number in range(count):
        with open(os.path.join(www, f"f{number}.bin"), "wb") as handle:
            handle.write(rng.randbytes(FILE_SIZE))


def write_prev(path: str, urls: list[str], rows: int) -> None:
    """A PREV of ``rows`` rows: one per URL of ``urls`` (as a first run wrote them), then
    rows of other URLs."""
    with open(path, "w", encoding="utf-8") as out:
        for index in range(rows):
            url = urls[index] if index < len(urls) else f"http://127.0.0.9:1/other/{index}"
            out.write(json.dumps({
                "index": index, "id": None, "url": url, "method": "GET", "ok": True,
                "status": 200, "reason": "OK", "elapsed": 0.001, "size": FILE_SIZE,
                "attempts": 1, "final_url": url, "content_type": "application/octet-stream",
                "error": "", "message": "", "path": "", "waited": 0.0, "wait_reason": "",
                "throttled": 0, "sha256": f"{index:064x}", "etag": f'"{index:x}-4000"',
                "last_modified": "Tue, 01 Dec 2026 00:00:00 GMT", "request_hash": "",
                "change": ""}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--prev-rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="batchfetch-bench-since-")
    os.chmod(workdir, 0o755)  # nginx's workers run as nobody and read the files from here
    rng = random.Random(19)
    nginx = LoggedNginx(workdir)
    nginx.start()
    www = nginx.www
    write_files(www, args.files, rng)
    report: dict = {"files": args.files, "file_size": FILE_SIZE, "rounds": args.rounds,
                    "concurrency": args.concurrency, "prev_rows": args.prev_rows}
    try:
        urls = [f"http://127.0.0.1:{nginx.port}/f{number}.bin" for number in range(args.files)]
        listed = os.path.join(workdir, "urls.txt")
        with open(listed, "w", encoding="utf-8") as out:
            out.writelines(url + "\n" for url in urls)
        concurrency = ["-c", str(args.concurrency)]
        first_runs, second_runs = [], []
        store_first, store_second = [], []
        for round_number in range(args.rounds):
            first, second = (os.path.join(workdir, f"{name}-{round_number}.jsonl")
                             for name in ("first", "second"))
            for label, firsts, seconds, first_args, second_args in (
                    ("jsonl", first_runs, second_runs, ["--hash", "-o", first],
                     ["--since", first, "-o", second]),
                    ("store", store_first, store_second,
                     ["-o", os.path.join(workdir, f"runs-{round_number}.db")],
                     ["-o", os.path.join(workdir, f"runs-{round_number}.db"), "--since",
                      os.path.join(workdir, f"runs-{round_number}.db")])):
                offset, served = nginx.log_size(), nginx.cpu_seconds()
                run = command([listed, *first_args, *concurrency])
                run["requests"], run["not_modified"], run["body_bytes"] = \
                    nginx.sent_since(offset)
                run["server_cpu"] = nginx.cpu_seconds() - served
                firsts.append(run)
                offset, served = nginx.log_size(), nginx.cpu_seconds()
                run = command([listed, *second_args, *concurrency])
                run["requests"], run["not_modified"], run["body_bytes"] = \
                    nginx.sent_since(offset)
                run["server_cpu"] = nginx.cpu_seconds() - served
                kinds = set(changes_in(second).values()) if label == "jsonl" else \
                    stored_changes(second_args[1])
                run["all_same"] = kinds == {"same"}
                seconds.append(run)
                print(f"round {round_number} {label}: first {firsts[-1]['wall']:.2f} s "
                      f"{firsts[-1]['body_bytes']} body bytes; second {run['wall']:.2f} s "
                      f"{run['body_bytes']} body bytes, {run['not_modified']} 304s, "
                      f"changes {sorted(kinds)}", flush=True)
        report["first"], report["second"] = first_runs, second_runs
        report["store_first"], report["store_second"] = store_first, store_second

        # A tenth of the files changed: new bytes, and an mtime 10 s on.
        changed = set(rng.sample(range(args.files), args.files // 10))
        later = time.time() + 10
        for number in changed:
            path = os.path.join(www, f"f{number}.bin")
            with open(path, "wb") as handle:
                handle.write(rng.randbytes(FILE_SIZE))
            os.utime(path, (later, later))
        third = os.path.join(workdir, "third.jsonl")
        offset = nginx.log_size()
        run = command([listed, "--since", os.path.join(workdir, "second-0.jsonl"), "-o", third,
                       *concurrency])
        run["requests"], run["not_modified"], run["body_bytes"] = nginx.sent_since(offset)
        said = changes_in(third)
        run["changed_files"] = len(changed)
        run["rows_changed"] = sum(kind == "changed" for kind in said.values())
        run["exactly_those"] = {index for index, kind in said.items()
                                if kind == "changed"} == changed and \
            all(kind == "same" for index, kind in said.items() if index not in changed)
        report["third"] = run
        print(f"10% changed: {run['rows_changed']} rows changed of {len(changed)} files "
              f"changed; exactly those: {run['exactly_those']}", flush=True)

        # Memory: --since a PREV of prev_rows rows against no --since.
        prev = os.path.join(workdir, "prev.jsonl")
        write_prev(prev, urls, args.prev_rows)
        plain_runs, since_runs = [], []
        for round_number in range(args.rounds):
            plain_runs.append(command([listed, "--hash", "-o",
                                       os.path.join(workdir, "plain.jsonl"), *concurrency]))
            since_runs.append(command([listed, "--since", prev, "-o",
                                       os.path.join(workdir, "big.jsonl"), *concurrency]))
            print(f"memory round {round_number}: without --since "
                  f"{plain_runs[-1]['rss_mib']:.1f} MiB, {plain_runs[-1]['wall']:.2f} s; "
                  f"--since {args.prev_rows} rows {since_runs[-1]['rss_mib']:.1f} MiB, "
                  f"{since_runs[-1]['wall']:.2f} s", flush=True)
        report["plain"], report["since_big"] = plain_runs, since_runs
    finally:
        nginx.stop()

    def median(runs: list[dict], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    summary = {f"{name}_{key}": median(runs, key)
               for name, runs in (("first", first_runs), ("second", second_runs),
                                  ("store_first", store_first), ("store_second", store_second))
               for key in ("wall", "cpu", "body_bytes", "server_cpu")}
    summary.update({f"{name}_{key}": median(runs, key)
                    for name, runs in (("plain", plain_runs), ("since", since_runs))
                    for key in ("wall", "cpu", "rss_mib")})
    summary["all_same"] = all(run["all_same"] for run in second_runs)
    summary["store_all_same"] = all(run["all_same"] for run in store_second)
    report["summary"] = summary
    share = summary["second_body_bytes"] / summary["first_body_bytes"]
    growth = summary["since_rss_mib"] - summary["plain_rss_mib"]
    print(f"\nsecond run: {share:.2%} of the first run's body bytes (target at most 5%), "
          f"wall {summary['second_wall']:.2f} s against {summary['first_wall']:.2f} s, "
          f"every row same: {summary['all_same']}; nginx's CPU {summary['second_server_cpu']:.2f} s "
          f"against {summary['first_server_cpu']:.2f} s")
    print(f"with a store (-o runs.db --since runs.db): second run "
          f"{summary['store_second_wall']:.2f} s against {summary['store_first_wall']:.2f} s, "
          f"every row same: {summary['store_all_same']}")
    print(f"--since {args.prev_rows} rows: peak RSS {summary['since_rss_mib']:.1f} MiB against "
          f"{summary['plain_rss_mib']:.1f} MiB ({growth:+.1f} MiB; target at most +30)")
    if args.rounds >= 3:
        report["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        report["batchfetch"] = subprocess.run(
            ["git", "-C", BENCH_DIR, "rev-parse", "--short", "HEAD"], capture_output=True,
            text=True).stdout.strip()
        with open(os.path.join(BENCH_DIR, "RESULTS-since.json"), "w", encoding="utf-8") as out:
            json.dump(report, out, indent=1)
        subprocess.run([sys.executable, os.path.join(BENCH_DIR, "run.py"), "--report-only"],
                       check=True)


if __name__ == "__main__":
    main()
