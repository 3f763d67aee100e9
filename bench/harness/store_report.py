"""RESULTS.md's sections on issue 19: writing rows into a SQLite store against JSON Lines
(``bench/store_write.py``'s RESULTS-store.json) and re-running a batch with ``--since``
(``bench/since.py``'s RESULTS-since.json); each left out when its file is not there."""
from __future__ import annotations

import json
import os

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = os.path.join(BENCH, "RESULTS-store.json")
SINCE_PATH = os.path.join(BENCH, "RESULTS-since.json")


def section(path: str = PATH, since_path: str = SINCE_PATH) -> list[str]:
    """The sections' lines; none for a file that is not there."""
    return _store_section(path) + _since_section(since_path)


def _load(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _store_section(path: str) -> list[str]:
    data = _load(path)
    if data is None:
        return []
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


def _since_section(path: str) -> list[str]:
    data = _load(path)
    if data is None:
        return []
    summary, third = data["summary"], data["third"]
    share = summary["second_body_bytes"] / summary["first_body_bytes"]
    growth = summary["since_rss_mib"] - summary["plain_rss_mib"]
    files = data["files"]
    lines = ["## Re-running a batch with --since (issue 19, `bench/since.py`)", "",
             f"Measured {data['date']} at batchfetch {data['batchfetch']}: {files} files of "
             f"{data['file_size'] // 1024} KiB from nginx's static files (which answer "
             f"If-None-Match and If-Modified-Since with 304 themselves), `-c "
             f"{data['concurrency']}`; each command's own wall time, CPU and peak RSS "
             f"(`wait4`), medians of {data['rounds']} rounds. Body bytes are nginx's "
             "`$body_bytes_sent`, from its access log.", "",
             "| run | wall | CPU | CPU per row | body bytes sent |", "|---|---|---|---|---|"]
    for name, label in (("first", "first: `--hash -o first.jsonl`"),
                        ("second", "second: `--since first.jsonl -o second.jsonl`"),
                        ("store_first", "first: `-o runs.db`"),
                        ("store_second", "second: `-o runs.db --since runs.db`")):
        if name + "_wall" not in summary:
            continue
        sent = summary.get(name + "_body_bytes", summary["first_body_bytes"]
                           if name == "store_first" else None)
        lines.append(f"| {label} | {summary[name + '_wall']:.2f} s | "
                     f"{summary[name + '_cpu']:.2f} s | "
                     f"{summary[name + '_cpu'] / files * 1e6:.0f} us | "
                     + (f"{sent:,.0f} |" if sent is not None else "- |"))
    lines += ["", f"- Second run: **{share:.2%}** of the first run's body bytes (target: at "
              f"most 5%), every row `same`: {summary['all_same']}; wall "
              f"{summary['second_wall'] / summary['first_wall']:.3f}x the first run's "
              "(target: no longer)"
              + (f"; with a store, {summary['store_second_wall'] / summary['store_first_wall']:.3f}x"
                 f", every row `same`: {summary['store_all_same']}"
                 if "store_second_wall" in summary else "") + ".",
              f"- nginx's CPU (what the run cost the site): "
              f"{summary['second_server_cpu']:.2f} s on the second run against "
              f"{summary['first_server_cpu']:.2f} s on the first."
              if "second_server_cpu" in summary else "",
              "- Each round's wall, first / second: JSON Lines "
              + ", ".join(f"{first['wall']:.2f} / {second['wall']:.2f}"
                          for first, second in zip(data["first"], data["second"]))
              + ("; store " + ", ".join(f"{first['wall']:.2f} / {second['wall']:.2f}"
                                        for first, second in zip(data["store_first"],
                                                                 data["store_second"]))
                 if "store_first" in data else "") + " s.",
              f"- A tenth of the files changed ({third['changed_files']}): "
              f"{third['rows_changed']} rows `changed`, exactly those: "
              f"{third['exactly_those']}.",
              f"- `--since` a PREV of {data['prev_rows']:,} rows: peak RSS "
              f"{summary['since_rss_mib']:.1f} MiB against {summary['plain_rss_mib']:.1f} MiB "
              f"without (**{growth:+.1f} MiB**; target: at most +30); the run took "
              f"{summary['since_wall']:.1f} s against {summary['plain_wall']:.1f} s, "
              "indexing PREV included.", ""]
    return lines
