"""Issue 14's part of RESULTS.md: the pace server's view of W8-W10, and the issue's targets.

Every run of a pace workload carries the server's counts (``server_stats``): requests,
429s, 504s, served latencies, and when the last response to a healthy host was sent.
This turns them into one table per workload and the targets table.
"""
from __future__ import annotations

import statistics

from .workloads import ALL_CLIENTS, QUEUE_LIMIT

#: W8: every row ok, at most this share of requests answered 429, within this of ideal.
TARGET_429_SHARE = 0.02
TARGET_W8_TIME = 1.15
#: W9: no 504 to a request sent after the first second; p50 latency under this many
#: times the unloaded one; throughput at least this share of capacity.
TARGET_P50_FACTOR = 2.0
TARGET_CAPACITY_SHARE = 0.9
#: The client shown beside batchfetch in the targets table (the issue quotes its figures).
REFERENCE = "reqstorm_auto"


def _median(values) -> float | None:
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _limited_requests(stats: dict) -> int:
    return stats["by_route"].get("/limited", 0)


def summarize(runs: list[dict]) -> dict | None:
    """One client's runs of one pace workload: medians of the server's counts per run."""
    timed = [run for run in runs if run["elapsed"] is not None and run.get("server_stats")]
    if not timed:
        return None
    stats = [run["server_stats"] for run in timed]
    healthy = [item["last_healthy"] for item in stats if item["last_healthy"] is not None]
    return {
        "n": len(timed), "count": timed[0]["count"],
        "ok": min(run["ok"] for run in timed),
        "time": _median(run["elapsed"] for run in timed),
        "requests": _median(item["requests"] for item in stats),
        "429": _median(item["429"] for item in stats),
        "429_retry_after": _median(item["429_retry_after"] for item in stats),
        "429_share": _median(item["429"] / _limited_requests(item) for item in stats
                             if _limited_requests(item)),
        "504": _median(item["504"] for item in stats),
        "504_late": _median(item["504_arrived_after_1s"] for item in stats),
        "p50": _median(item["latency_p50"] for item in stats),
        "unloaded_p50": _median(item.get("unloaded_p50") for item in stats),
        "last_healthy": _median(healthy),
        "last_healthy_min": min(healthy) if healthy else None,
        "last_healthy_max": max(healthy) if healthy else None,
        "limited_in_flight": _median(item.get("limited_in_flight") for item in stats),
    }


def by_client(data: dict, workload: str) -> dict[str, dict]:
    result = {}
    for client in ALL_CLIENTS:
        summary = summarize([run for run in data["runs"]
                             if run["workload"] == workload and run["client"] == client])
        if summary:
            result[client] = summary
    return result


def _control(name: str, data: dict) -> str | None:
    """W10's control workload (W10C), when it was measured."""
    control = name + "C"
    return control if control in data["workloads"] else None


def section(name: str, meta: dict, data: dict) -> list[str]:
    """The server's view of one pace workload: a table, one row per client."""
    clients = by_client(data, name)
    if not clients:
        return []
    limited = meta["path"] == "/limited" or (meta["limited"] and not meta["healthy_only"])
    queue = meta["path"] == "/queue"
    mixed = bool(meta["limited"])
    control = _control(name, data) if mixed and not meta["healthy_only"] else None
    controls = by_client(data, control) if control else {}
    header = ["client", "ok rows (worst run)", "time / ideal", "requests sent"]
    if limited:
        header += ["429s (with Retry-After)", "429s / requests to limited hosts"]
    if queue:
        header += ["throughput / capacity", "504s", "504s to requests sent after 1 s",
                   "p50 latency ms", "p50 / unloaded"]
    if mixed:
        header += ["last healthy-host row s (min-max)"]
    if control:
        header += ["limited hosts' requests in flight (mean, until then)"]
    if control:
        header += [f"{control}'s (min-max)", f"vs {control}"]
    lines = ["What the pace server saw, medians over the runs (time / ideal is the client's "
             "clock, as above; row times are the server's, from the run's first request):", "",
             "| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for client, stats in clients.items():
        cells = [client, f"{stats['ok']:,} / {stats['count']:,}",
                 f"{stats['time'] / meta['ideal']:.2f}x", _fmt(stats["requests"], ",.0f")]
        if limited:
            cells += [f"{stats['429']:,.0f} ({stats['429_retry_after']:,.0f})",
                      _fmt(stats["429_share"], ".1%")]
        if queue:
            rate = stats["count"] / stats["time"]
            factor = (stats["p50"] / stats["unloaded_p50"]
                      if stats["p50"] and stats["unloaded_p50"] else None)
            cells += [f"{rate / meta['capacity']:.2f}", f"{stats['504']:,.0f}",
                      f"{stats['504_late']:,.0f}", _fmt(stats["p50"] and stats["p50"] * 1000,
                                                       ".0f"),
                      _fmt(factor, ".1f") + ("x" if factor else "")]
        if mixed:
            cells.append(_span(stats))
        if control:
            base = controls.get(client)
            cells += [_fmt(stats["limited_in_flight"], ".1f"),_span(base) if base else "-",
                      f"{stats['last_healthy'] / base['last_healthy']:.2f}x"
                      if base and base["last_healthy"] and stats["last_healthy"] else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = []
    if queue:
        unloaded = _median(stats["unloaded_p50"] for stats in clients.values())
        notes.append(f"- The unloaded p50 (one request at a time, measured before each run) "
                     f"was {_fmt(unloaded and unloaded * 1000, '.1f')} ms.")
        if not any(stats["504"] for stats in clients.values()):
            waiting = meta["concurrency"] - meta["capacity"] * meta["delay"]
            notes.append(f"- No client drew a 504: with at most {meta['concurrency']} requests "
                         f"in flight the queue holds at most {waiting:.0f}, "
                         f"{waiting / meta['capacity']:.2f} s of waiting, under the "
                         f"{QUEUE_LIMIT:g} s queue limit; only latency and throughput tell the "
                         "clients apart here.")
    if limited and not any(stats["429"] for stats in clients.values()):
        notes.append("- No client drew a 429: the rate-limited hosts never refused, so this "
                     "run did not test pacing against them.")
    return lines + ([""] + notes if notes else []) + [""]


def _span(stats: dict) -> str:
    if stats["last_healthy"] is None:
        return "-"
    return (f"{stats['last_healthy']:.2f} ({stats['last_healthy_min']:.2f}-"
            f"{stats['last_healthy_max']:.2f})")


def _w8_rows(name: str, meta: dict, clients: dict) -> list[tuple[str, dict]]:
    return [
        (f"{name} every row ok", {
            client: (f"{stats['ok']:,} / {stats['count']:,}", stats["ok"] == stats["count"])
            for client, stats in clients.items()}),
        (f"{name} 429s <= {TARGET_429_SHARE:.0%} of requests", {
            client: (_fmt(stats["429_share"], ".1%"),
                     stats["429_share"] is not None and stats["429_share"] <= TARGET_429_SHARE)
            for client, stats in clients.items()}),
        (f"{name} time <= {TARGET_W8_TIME}x ideal ({meta['ideal']:.0f} s)", {
            client: (f"{stats['time'] / meta['ideal']:.2f}x",
                     stats["time"] / meta["ideal"] <= TARGET_W8_TIME)
            for client, stats in clients.items()}),
    ]


def _w9_rows(name: str, meta: dict, clients: dict) -> list[tuple[str, dict]]:
    def p50(stats):
        if not stats["p50"] or not stats["unloaded_p50"]:
            return "-", False
        factor = stats["p50"] / stats["unloaded_p50"]
        return f"{factor:.1f}x", factor < TARGET_P50_FACTOR

    def rate(stats):
        share = stats["count"] / stats["time"] / meta["capacity"]
        return f"{share:.2f}", share >= TARGET_CAPACITY_SHARE

    return [
        (f"{name} no 504s to requests sent after the first second", {
            client: (f"{stats['504_late']:,.0f}", stats["504_late"] == 0)
            for client, stats in clients.items()}),
        (f"{name} p50 latency < {TARGET_P50_FACTOR:g}x unloaded",
         {client: p50(stats) for client, stats in clients.items()}),
        (f"{name} throughput >= {TARGET_CAPACITY_SHARE:g} of capacity "
         f"({meta['capacity']:.0f}/s)", {client: rate(stats) for client, stats in clients.items()}),
    ]


def _share_bound(stats: dict, base: dict, concurrency: int) -> float | None:
    """How late the healthy rows may end once the limited hosts' share of slots is paid.

    Requests the rate-limited hosts have in flight hold slots of the run's concurrency,
    so the healthy hosts' work has fewer to run in: at C slots of which L are held on
    average, the control's time stretches by C / (C - L). Anything later is slowdown the
    limited hosts' trouble caused beyond the work they did.
    """
    held = stats["limited_in_flight"]
    if held is None or held >= concurrency:
        return None
    return base["last_healthy_max"] * concurrency / (concurrency - held)


def _w10_rows(name: str, meta: dict, control: str, clients: dict,
              controls: dict) -> list[tuple[str, dict]]:
    spread, share = {}, {}
    for client, stats in clients.items():
        base = controls.get(client)
        if not (base and base["last_healthy"] and stats["last_healthy"]):
            continue
        spread[client] = (f"{stats['last_healthy']:.2f} s vs {base['last_healthy_max']:.2f} s",
                          stats["last_healthy"] <= base["last_healthy_max"])
        bound = _share_bound(stats, base, meta["concurrency"])
        if bound is not None:
            share[client] = (f"{stats['last_healthy']:.2f} s vs {bound:.2f} s",
                             stats["last_healthy"] <= bound)
    return [(f"{name} last healthy-host row no later than {control}'s slowest run", spread),
            (f"{name} last healthy-host row no later than {control}'s slowest run x C / "
             "(C - limited hosts' requests in flight)", share)]


def targets(data: dict) -> list[str]:
    """Issue 14's targets, for batchfetch and reqstorm_auto (empty if no pace workload ran)."""
    rows: list[tuple[str, dict]] = []
    for name, meta in data["workloads"].items():
        if meta.get("server") != "pace":
            continue
        clients = by_client(data, name)
        if not clients:
            continue
        if meta["path"] == "/limited":
            rows += _w8_rows(name, meta, clients)
        elif meta["path"] == "/queue":
            rows += _w9_rows(name, meta, clients)
        elif meta["limited"] and not meta["healthy_only"] and _control(name, data):
            control = _control(name, data)
            rows += _w10_rows(name, meta, control, clients, by_client(data, control))
    if not rows:
        return []
    lines = ["## Targets (from issue 14)", "",
             f"| target | batchfetch | met | {REFERENCE} | met |", "|---|---:|:---:|---:|:---:|"]
    for what, values in rows:
        cells = [what]
        for client in ("batchfetch", REFERENCE):
            value, met = values.get(client, ("-", None))
            cells += [value, "-" if met is None else ("yes" if met else "**no**")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + ["", "W10's \"within the run-to-run spread\": W10's median no later than the "
                    "slowest W10C run of the same client (times are the server's, from each "
                    "run's first request). The second W10 row is its profile: the "
                    "rate-limited hosts' requests in flight hold slots of the run's "
                    "concurrency C while they do their work, so no client that keeps C can "
                    "give the healthy hosts all of it; the row asks that the healthy rows "
                    "lose no more than that share.", ""]
