"""RESULTS.md from the recorded runs: per-workload tables, ratios, targets, the machine.

The raw runs live in a JSON file next to RESULTS.md. A new session replaces the
(workload, client) pairs it ran and keeps the others, so batchfetch alone can be
re-measured after a change against the peers' earlier runs; each section says
which sessions measured it.
"""
from __future__ import annotations

import json
import os
import statistics

from . import distributed_report, pace_report, store_report, transport_report
from .workloads import ALL_CLIENTS, AUTO_PEERS, PEERS

TARGET_EFFICIENCY = 0.95
TARGET_W1_SPEEDUP = 2.0
#: W1 with every core: "at least as fast as aiohttp-based batch fetchers (about 3,000
#: req/s here)", issue 6 says.
TARGET_ALL_CORES_RATE = 3000.0
TARGET_RSS_MB = 60.0
TARGET_RSS_GROWTH = 0.10
#: Above this share of a core used by other processes, a workload's section says so.
NOISY_OTHER_CPU = 0.20


def load(path: str) -> dict:
    if not os.path.exists(path):
        return {"sessions": {}, "workloads": {}, "runs": []}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def merge(data: dict, session: dict, workloads: dict, runs: list[dict]) -> dict:
    """Replace the (workload, client) pairs this session ran; keep every other run."""
    ran = {(run["workload"], run["client"]) for run in runs}
    kept = [run for run in data["runs"] if (run["workload"], run["client"]) not in ran]
    data["runs"] = kept + runs
    data["workloads"].update(workloads)
    data["sessions"][session["id"]] = session
    used = {run["session"] for run in data["runs"]}
    data["sessions"] = {key: value for key, value in data["sessions"].items() if key in used}
    return data


def save(data: dict, path: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
        handle.write("\n")


# -- numbers ---------------------------------------------------------------

def _clean(runs: list[dict]) -> list[dict]:
    return [run for run in runs if run["elapsed"] is not None]


def _median(values):
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def summarize(runs: list[dict]) -> dict | None:
    """Medians (and min-max of the time) of one client's runs of one workload."""
    timed = _clean(runs)
    if not timed:
        return None
    times = [run["elapsed"] for run in timed]
    count = timed[0]["count"]
    return {
        "time": statistics.median(times), "min": min(times), "max": max(times),
        "n": len(timed), "rate": count / statistics.median(times),
        "cpu_ms": _median(run["cpu"] * 1000 / count for run in timed),
        "rss_mb": _median(run["max_rss_kb"] / 1024 for run in timed),
        "connections": _median(run["connections"] for run in timed),
        "max_connections": max(run["connections"] for run in timed),
        "most_open": max((run.get("open_connections") or 0 for run in timed), default=0)
        if any(run.get("open_connections") is not None for run in timed) else None,
        "server_cpu": _median(run["server_cpu"] / run["elapsed"] for run in timed
                              if run["elapsed"]),
        "other_cpu": _median(run["other_cpu"] / run["wall"] for run in timed
                             if run.get("other_cpu") is not None and run["wall"]),
        "parent_cpu_ms": _median(run["parent_cpu"] * 1000 / count for run in timed
                                 if run.get("parent_cpu") is not None),
        "ok": min(run["ok"] for run in timed), "failed": max(run["failed"] for run in timed),
        "count": count,
        "problems": sorted({run["problem"] for run in runs if run["problem"]}),
        "errors": _merged_errors(timed),
    }


def _merged_errors(runs: list[dict]) -> dict:
    merged: dict[str, int] = {}
    for run in runs:
        for kind, number in run["errors"].items():
            merged[kind] = max(merged.get(kind, 0), number)
    return merged


def by_client(data: dict, workload: str) -> dict[str, dict]:
    result = {}
    for client in ALL_CLIENTS:
        runs = [run for run in data["runs"]
                if run["workload"] == workload and run["client"] == client]
        summary = summarize(runs) if runs else None
        if summary:
            result[client] = summary
    return result


# -- rendering -------------------------------------------------------------

def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def _workload_section(name: str, meta: dict, clients: dict[str, dict],
                      sessions: list[str], unfinished: dict[str, list[str]]) -> list[str]:
    ideal = meta["ideal"]
    hosts = f" over {meta['hosts']} hosts" if meta["hosts"] > 1 else ""
    lines = [f"### {name} {meta['title']}", "",
             f"{meta['count']:,} GETs at concurrency {meta['concurrency']}{hosts}"
             f": {meta['meaning'].rstrip('.?')}."
             + (f" Ideal {ideal:.1f} s." if ideal else "")
             + f" Up to {meta['repeats']} run(s) per client, clients alternated;"
             f" Session(s): {', '.join(sessions)}.", ""]
    base = clients.get("batchfetch")
    header = ["client", "time s: median (min-max)", "req/s", "peer / batchfetch time"]
    if ideal:
        header.append("efficiency")
    header += ["CPU ms/req", "peak RSS MB", "connections", "server CPU",
               "other CPU", "ok / failed"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for client, stats in clients.items():
        ratio = "(base)" if client == "batchfetch" else (_ratio(stats, base) if base else "-")
        cells = [client, f"{stats['time']:.2f} ({stats['min']:.2f}-{stats['max']:.2f})"
                 + ("" if stats["n"] == meta["repeats"] else f" [{stats['n']} run(s)]"),
                 f"{stats['rate']:,.0f}", ratio]
        if ideal:
            cells.append(f"{ideal / stats['time']:.2f}")
        connections = _fmt(stats["connections"], ".0f")
        if stats["max_connections"] != stats["connections"]:
            connections += f" (max {stats['max_connections']})"
        if stats.get("most_open") is not None:
            connections += f"; {stats['most_open']} open at most"
        cells += [f"{stats['cpu_ms']:.3f}", f"{stats['rss_mb']:.0f}", connections,
                  f"{stats['server_cpu']:.0%}", _fmt(stats["other_cpu"], ".0%"),
                  f"{stats['ok']:,} / {stats['failed']:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = []
    busy = _median(stats["other_cpu"] for stats in clients.values())
    if busy is not None and busy > NOISY_OTHER_CPU:
        notes.append(f"- Other processes used {busy:.0%} of a core (median) during these runs: "
                     "the machine was shared, so these numbers are noisier than usual.")
    for client, stats in clients.items():
        if stats["errors"]:
            kinds = ", ".join(f"{kind}: {number}" for kind, number in stats["errors"].items())
            notes.append(f"- {client} failures (worst run): {kinds}")
        for problem in stats["problems"]:
            notes.append(f"- {client}: {problem}")
    for client, problems in unfinished.items():
        runs = f"{len(problems)} runs, the first" if len(problems) > 1 else "1 run"
        notes.append(f"- {client}: no run finished ({runs}): {problems[0]}")
    if notes:
        lines += ["", *notes]
    return lines + [""]


def _ratio(peer: dict, base: dict) -> str:
    """Peer time / batchfetch time; starred when either had failed or broken runs."""
    star = "*" if peer["problems"] or base["problems"] else ""
    return f"{peer['time'] / base['time']:.2f}x{star}"


def _ratio_table(data: dict, order: list[str]) -> list[str]:
    measured = {run["client"] for run in data["runs"]}
    peers = [peer for peer in (*PEERS, *AUTO_PEERS) if peer in measured]
    lines = ["| workload | " + " | ".join(peers) + " |",
             "|---|" + "---:|" * len(peers)]
    for name in order:
        clients = by_client(data, name)
        base = clients.get("batchfetch")
        if not base:
            continue
        cells = [_ratio(clients[peer], base) if peer in clients else "-" for peer in peers]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _targets(data: dict) -> list[str]:
    rows = []

    def base(name):
        return by_client(data, name).get("batchfetch") if name in data["workloads"] else None

    for name in ("W2", "W4"):
        stats = base(name)
        if stats:
            value = data["workloads"][name]["ideal"] / stats["time"]
            rows.append((f"{name} efficiency (ideal / measured) >= {TARGET_EFFICIENCY}",
                         f"{value:.3f}", value >= TARGET_EFFICIENCY))
    w1 = by_client(data, "W1") if "W1" in data["workloads"] else {}
    if "batchfetch" in w1 and "grequests_session" in w1:
        value = w1["grequests_session"]["time"] / w1["batchfetch"]["time"]
        rows.append((f"W1 batchfetch req/s >= {TARGET_W1_SPEEDUP:g}x tuned grequests "
                     "(grequests_session)", f"{value:.2f}x", value >= TARGET_W1_SPEEDUP))
    if "batchfetch_workers" in w1:
        value = w1["batchfetch_workers"]["rate"]
        rows.append((f"W1 batchfetch_workers (every core) req/s >= {TARGET_ALL_CORES_RATE:,.0f}",
                     f"{value:,.0f}", value >= TARGET_ALL_CORES_RATE))
    rss = {name: base(name)["rss_mb"] for name in ("W3", "W3M") if base(name)}
    for name, value in rss.items():
        rows.append((f"{name} batchfetch peak RSS < {TARGET_RSS_MB:g} MB", f"{value:.0f} MB",
                     value < TARGET_RSS_MB))
    if len(rss) == 2:
        growth = rss["W3M"] / rss["W3"] - 1
        rows.append((f"W3 peak RSS 1M vs 200k within {TARGET_RSS_GROWTH:.0%}", f"{growth:+.1%}",
                     abs(growth) <= TARGET_RSS_GROWTH))
    for name, meta in data["workloads"].items():
        measured = by_client(data, name) if meta["healthy"] else {}
        for client in ("batchfetch", "batchfetch_workers"):
            stats = measured.get(client)
            if stats and stats.get("most_open") is not None:
                rows.append((f"{name} {client} connections open at once <= concurrency "
                             f"{meta['concurrency']}", f"{stats['most_open']}",
                             stats["most_open"] <= meta["concurrency"]))
            elif stats:
                rows.append((f"{name} {client} connections <= concurrency "
                             f"{meta['concurrency']}", f"{stats['max_connections']}",
                             stats["max_connections"] <= meta["concurrency"]))
    lines = ["| target | batchfetch | met |", "|---|---:|:---:|"]
    lines += [f"| {what} | {value} | {'yes' if met else '**no**'} |" for what, value, met in rows]
    return lines


def render(data: dict, order: list[str]) -> str:
    """The whole RESULTS.md."""
    sessions = data["sessions"]
    latest = max(sessions.values(), key=lambda session: session["started"])
    order = [name for name in order if name in data["workloads"]]
    lines = ["# batchfetch benchmark results", "",
             "Written by `bench/run.py` (see bench/README.md for what each workload means and "
             "how to read this). Loopback only: nginx 1 worker and the clients share the "
             "machine's cores.", ""]
    lines += ["## Sessions", ""]
    for session in sorted(sessions.values(), key=lambda session: session["started"]):
        lines.append(f"- {session['id']}: `{session['command']}`, started {session['started']}, "
                     f"took {session['duration'] / 60:.1f} min; workloads "
                     f"{', '.join(session['workloads'])}; batchfetch "
                     f"{session['machine']['batchfetch']}")
    issue_6 = _targets(data)
    if len(issue_6) > 2:  # more than the table's head: a workload of issue 6 was measured
        lines += ["", "## Targets (from issue 6)", "", *issue_6]
    lines += ["", *transport_report.machine_line(data, by_client),
              *transport_report.targets(data, by_client), *pace_report.targets(data),
              "## Time ratios: each peer's median time / batchfetch's (above 1: batchfetch is "
              "faster)", "", *_ratio_table(data, order), "",
              "\\* a run of one of the two was not clean (failures, a crash, a kill): its time "
              "is not comparable; see the workload's notes.", "", "## Workloads", ""]
    for name in order:
        clients = by_client(data, name)
        used: dict[str, set[str]] = {}
        for run in data["runs"]:
            if run["workload"] == name:
                used.setdefault(run["session"], set()).add(run["client"])
        labels = [session if len(clients_run) == len(clients) else
                  f"{session} ({', '.join(sorted(clients_run))})"
                  for session, clients_run in sorted(used.items())]
        unfinished: dict[str, list[str]] = {}  # client -> each failed run's problem
        for run in data["runs"]:
            if run["workload"] == name and run["client"] not in clients:
                unfinished.setdefault(run["client"], []).append(run["problem"])
        lines += _workload_section(name, data["workloads"][name], clients, labels, unfinished)
        if data["workloads"][name].get("server") == "pace":
            lines += pace_report.section(name, data["workloads"][name], data)
    lines += distributed_report.section()
    lines += store_report.section()
    lines += ["## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in latest["machine"].items()]
    lines.append("")
    return "\n".join(lines)
