"""RESULTS.md's section on the distributed engine, from ``bench/distributed.py``'s
RESULTS-distributed.json (left out when that file is not there)."""
from __future__ import annotations

import json
import os

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "RESULTS-distributed.json")


def section(path: str = PATH) -> list[str]:
    """The section's lines; none without the file."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    summary = data["summary"]
    local = summary["local"]
    lines = ["## The distributed engine (issue 18, `bench/distributed.py`)", "",
             f"Measured {data['date']} at batchfetch {data['batchfetch']}: 4,000 GETs of a "
             "loopback server answering each after 200 ms, 50 in flight per worker process, "
             f"chunks of 200, medians of {data['rounds']} rounds (local, 1 worker, 2 workers "
             "rotated). CPU per row counts the driver (this process), the workers and "
             "redis-server; the local engine's is its one process.", "",
             "| | wall time | CPU per row | driver CPU | workers + redis CPU | other CPU |",
             "|---|---|---|---|---|---|"]
    for setup in ("local", "1 worker", "2 workers"):
        row = summary[setup]
        lines.append(f"| {setup} | {row['wall']:.2f} s | {row['cpu_per_row_ms']:.3f} ms | "
                     f"{row['driver_cpu']:.2f} s | {row['workers_redis_cpu']:.2f} s | "
                     f"{row['other_cpu']:.2f} s |")
    ratio = summary["2 workers / 1 worker"]
    cost = summary["1 worker"]["cpu_per_row_ms"] / local["cpu_per_row_ms"]
    lines += ["", f"- Two workers against one: **{ratio:.2f}x** (target: at least 1.8x).",
              f"- A row on the Celery path (one worker) costs {cost:.2f}x the CPU of the local "
              "engine's, counting the driver, the worker and Redis.", ""]
    return lines
