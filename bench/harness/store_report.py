"""RESULTS.md's section on writing rows into a SQLite store against JSON Lines, from
``bench/store_write.py``'s RESULTS-store.json (left out when that file is not there)."""
from __future__ import annotations

import json
import os

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "RESULTS-store.json")


def section(path: str = PATH) -> list[str]:
    """The section's lines; none without the file."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    lines = ["## Rows into a SQLite store (issue 19, `bench/store_write.py`)", "",
             f"Measured {data['date']} at batchfetch {data['batchfetch']}: {data['requests']} "
             "GETs of the loopback test server (its own process), `-c 50`, the command's own "
             f"CPU, medians of {data['rounds']} alternated rounds.", "",
             "| output | wall | CPU | CPU per row |", "|---|---|---|---|"]
    for name, row in data["summary"].items():
        lines.append(f"| `-o rows.{name}` | {row['wall']:.2f} s | {row['cpu']:.2f} s | "
                     f"{row['cpu'] / data['requests'] * 1e6:.0f} us |")
    ratio = data["summary"]["db"]["cpu"] / data["summary"]["jsonl"]["cpu"]
    lines += ["", f"- SQLite's CPU against JSON Lines': **{ratio:.3f}x** (target: within "
              "1.10x).", ""]
    return lines
