"""Benchmark batchfetch against its peers on loopback and write bench/RESULTS.md.

    python bench/run.py                      # W1 W2 W4 W5 (3 runs each) and W5C (~15 min)
    python bench/run.py --quick              # smoke test: small counts, one run each (~3 min)
    python bench/run.py --workloads W3,W3M   # only these (the memory workloads are opt-in)
    python bench/run.py --workloads W8,W9,W10,W10C   # issue 14's pace workloads (~15 min)
    python bench/run.py --workloads all      # everything (~60 min: add --budget 90)

Installs nginx + its echo module (apt) and aiohttp and reqstorm (pip) when missing,
starts nginx, the fault server and the pace server on 127.0.0.0/8 (those the chosen
workloads need), runs every client in its own process, clients alternated, and stops
only the processes it started. See bench/README.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time

from harness import environment, profiling, report, runner, servers, workloads

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small counts, one run per client (a smoke test, ~3 min)")
    parser.add_argument("--workloads", default=",".join(workloads.DEFAULT_WORKLOADS),
                        help="comma-separated: W1,W2,W3,W3M,W4,W5,W5C,W8,W9,W10,W10C, or all "
                             "(default: %(default)s)")
    parser.add_argument("--clients", default=",".join(workloads.ALL_CLIENTS),
                        help="comma-separated subset of: %(default)s")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs per client (default: 3; W3, W3M and W5C: 1; --quick: 1)")
    parser.add_argument("--budget", type=float, default=None,
                        help="minutes; runs that would start later are skipped "
                             "(default: 60, --quick: 10)")
    parser.add_argument("--out", default=None,
                        help="RESULTS.md to write (default: bench/RESULTS.md; --quick: in the "
                             "temp dir); the raw runs go next to it as .json")
    parser.add_argument("--fresh", action="store_true",
                        help="forget earlier runs instead of keeping those this session does not redo")
    parser.add_argument("--batchfetch-path", default=REPO_DIR,
                        help="directory put first on the clients' PYTHONPATH, so batchfetch is "
                             "imported from that working tree (default: %(default)s)")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: rewrite RESULTS.md from the raw runs beside it")
    parser.add_argument("--no-install", action="store_true",
                        help="do not apt-get/pip install anything; fail if it is missing")
    return parser.parse_args()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def raise_open_files_limit() -> None:
    """Children inherit it: grequests_plain and 200 threads' sessions open many sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def selected(args) -> tuple[list[workloads.Workload], list[str]]:
    defined = workloads.define(args.quick)
    names = [name.strip().upper() for name in args.workloads.split(",") if name.strip()]
    if names == ["ALL"]:
        names = list(defined)
    unknown = [name for name in names if name not in defined]
    clients = [name.strip() for name in args.clients.split(",") if name.strip()]
    unknown += [name for name in clients if name not in workloads.ALL_CLIENTS]
    if unknown:
        sys.exit(f"unknown workload or client: {', '.join(unknown)}")
    chosen = []
    for name in names:
        workload = defined[name]
        if args.repeats is not None:
            workload = dataclasses.replace(workload, repeats=args.repeats)
        chosen.append(workload)
    return chosen, clients


def run_workload(workload, clients, server, env, workdir, deadline, session_id) -> list[dict]:
    """Every client ``repeats`` times, the order rotated each round so none always goes first."""
    order = [client for client in workload.clients if client in clients]
    if "batchfetch_adaptive" in clients and "batchfetch" in workload.clients:
        order.insert(1, "batchfetch_adaptive")  # opt-in on any workload batchfetch runs
    url_file = os.path.join(workdir, f"{workload.name}.urls")
    if not workload.faults:
        workload.write_urls(server, "", url_file)
    runs = []
    for repeat in range(workload.repeats):
        rotated = order[repeat % len(order):] + order[:repeat % len(order)]
        for client in rotated:
            if time.monotonic() > deadline:
                log(f"{workload.name} {client} #{repeat + 1}: skipped, over the time budget")
                continue
            if workload.faults:  # fresh keys: the "503 once" state must be new each run
                workload.write_urls(server, f"{session_id}-{client}-{repeat}", url_file)
            run = runner.run_client(client, workload, repeat, url_file, server, env, workdir)
            log(f"{workload.name} {client:18} #{repeat + 1}: "
                + (f"{run.elapsed:7.2f} s" if run.elapsed is not None else "   n/a   ")
                + f"  ok {run.ok}/{run.count}  cpu {run.cpu:6.1f} s  rss "
                f"{run.max_rss_kb / 1024:6.0f} MB  conns {run.connections}"
                + (f" ({run.open_connections} open at most)"
                   if run.open_connections is not None else "")
                + f"  server cpu {run.server_cpu:5.1f} s  other cpu {run.other_cpu:5.1f} s"
                + (_pace_counts(run.server_stats) if run.server_stats else "")
                + f"  {run.problem}")
            runs.append(dict(dataclasses.asdict(run), session=session_id))
            time.sleep(0.5)  # let closed connections settle before the next counter read
    return runs


def profile_w1(workload, server, env, workdir) -> dict | None:
    """One batchfetch run of W1 under py-spy: each part's share of its CPU (None when
    py-spy cannot attach, as in a container without ptrace)."""
    raw = os.path.join(workdir, "W1-batchfetch.profile")
    command = [profiling.py_spy(), "record", "--rate", "250", "--format", "raw",
               "--output", raw, "--",
               *runner.client_command("batchfetch", workload,
                                      os.path.join(workdir, f"{workload.name}.urls"))]
    result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    if result.returncode or not os.path.exists(raw):
        log(f"W1 profile: py-spy failed: {result.stderr.strip()[-200:]}")
        return None
    shares = profiling.parts(raw)
    log("W1 profile: " + ", ".join(f"{label.split(' (')[0]} {share:.0%}"
                                   for label, share in shares.items()))
    return shares


def _pace_counts(stats: dict) -> str:
    """The pace server's counts for the log line: what a run drew from it."""
    p50 = stats["latency_p50"]
    return (f"  sent {stats['requests']}  429 {stats['429']}  504 {stats['504']}"
            + (f"  p50 {p50 * 1000:.0f} ms" if p50 is not None else "")
            + (f"  last healthy {stats['last_healthy']:.2f} s"
               if stats["last_healthy"] is not None else ""))


def write_report(data: dict, out: str) -> None:
    with open(out, "w", encoding="utf-8") as handle:
        handle.write(report.render(data, list(workloads.define().keys())))


def main() -> None:
    # `kill` stops the servers as Ctrl-C does: SystemExit runs the finally below.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    args = parse_args()
    if args.report_only:
        out = args.out or os.path.join(BENCH_DIR, "RESULTS.md")
        write_report(report.load(os.path.splitext(out)[0] + ".json"), out)
        log(f"wrote {out}")
        return
    chosen, clients = selected(args)
    started_wall = time.monotonic()
    budget = args.budget if args.budget is not None else (10 if args.quick else 60)
    deadline = started_wall + budget * 60
    if not args.no_install:
        environment.install(log)
    raise_open_files_limit()
    workdir = tempfile.mkdtemp(prefix="batchfetch-bench-")
    os.chmod(workdir, 0o755)  # nginx's workers run as nobody and serve a file from here
    out = args.out or (os.path.join(workdir, "RESULTS.md") if args.quick
                       else os.path.join(BENCH_DIR, "RESULTS.md"))
    raw_path = os.path.splitext(out)[0] + ".json"
    env = runner.client_env(os.path.abspath(args.batchfetch_path))
    session = {
        "id": datetime.datetime.now().strftime("%Y%m%d-%H%M%S"),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": shlex.join(["python", "bench/run.py", *sys.argv[1:]]),
        "quick": args.quick,
        "workloads": [workload.name for workload in chosen],
        "machine": environment.describe(env, REPO_DIR),
    }
    log(f"logs and URL files in {workdir}; batchfetch {session['machine']['batchfetch']}")
    started: dict = {}  # workload.server -> the server running for it
    runs: list[dict] = []
    try:
        needed = {workload.server for workload in chosen}
        for kind in (kind for kind in servers.KINDS if kind in needed):
            # Kept before it starts: one that fails to come up is still stopped below.
            server = started[kind] = servers.new(kind, workdir,
                                                 workloads.pace_server_settings())
            server.start()
            log(server.describe())
        for workload in chosen:
            server = started[workload.server]
            log(f"{workload.name} {workload.title}: {workload.count:,} GETs, concurrency "
                f"{workload.concurrency}, {workload.repeats} run(s) per client")
            runs += run_workload(workload, clients, server, env, workdir, deadline,
                                 session["id"])
            if workload.name == "W1" and "batchfetch" in clients and not args.quick:
                session["w1_profile"] = profile_w1(workload, server, env, workdir)
    finally:
        for server in started.values():
            server.stop()
        if runs:
            session["duration"] = time.monotonic() - started_wall
            ran = {workload.name: dict(dataclasses.asdict(workload), ideal=workload.ideal,
                                       healthy=workload.healthy)
                   for workload in chosen if any(run["workload"] == workload.name
                                                 for run in runs)}
            data = report.load(raw_path) if not args.fresh else report.load("")
            data = report.merge(data, session, ran, runs)
            report.save(data, raw_path)
            write_report(data, out)
            log(f"wrote {out} and {raw_path} after {session['duration'] / 60:.1f} min")


if __name__ == "__main__":
    main()
