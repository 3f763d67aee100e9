"""Running one client in a process of its own and measuring it.

The client's own JSON line gives its counts and elapsed time (after interpreter
start-up). ``os.wait4`` gives that process's user+sys CPU and peak RSS (curl's
wrapper included with curl, which it waits for). The server's counters before and
after give the TCP connections the run opened and the server's CPU; the pace server
also gives what the run drew from it (429s, 504s, latencies: ``Run.server_stats``).
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time

from . import procstat
from .workloads import AUTO_PEERS, WORKERS, Workload

CLIENT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "clients")
CLIENT_SCRIPTS = {
    "batchfetch": "batchfetch_client.py",
    "batchfetch_workers": "batchfetch_client.py",
    "batchfetch_adaptive": "batchfetch_client.py",
    "grequests_plain": "grequests_plain.py",
    "grequests_session": "grequests_session.py",
    "requests_threads": "requests_threads.py",
    "aiohttp": "aiohttp_queue.py",
    "curl": "curl_parallel.py",
    "reqstorm_auto": "reqstorm_auto.py",
    "reqstorm_fixed": "reqstorm_fixed.py",
    "geventhttpclient_plain": "geventhttpclient_plain.py",
}
#: Clients with an adaptive option of their own, switched on by ``Workload.adaptive``.
ADAPTIVE_CLIENTS = ("batchfetch",)


@dataclasses.dataclass
class Run:
    """One client's run of one workload, as the report needs it."""

    workload: str
    client: str
    repeat: int
    count: int
    ok: int = 0
    failed: int = 0
    bytes: int = 0
    elapsed: float | None = None      # the client's own clock, seconds
    wall: float = 0.0                 # process start to exit, seconds
    cpu: float = 0.0                  # user + sys seconds of the client process tree
    max_rss_kb: int = 0
    connections: int | None = None   # connections the server accepted during the run
    open_connections: int | None = None  # the most it had open at once (nginx, sampled)
    server_cpu: float | None = None   # server CPU seconds during the run
    other_cpu: float | None = None    # CPU seconds other processes used during the run
    attempts: int | None = None
    parent_cpu: float | None = None   # batchfetch's own process alone (not its workers)
    errors: dict = dataclasses.field(default_factory=dict)
    problem: str = ""                 # why the run is not a clean measurement, if it is not
    server_stats: dict | None = None  # the pace server's counts for this run


def client_env(batchfetch_path: str) -> dict[str, str]:
    """The clients' environment: batchfetch from ``batchfetch_path`` first, no proxies.

    Proxy variables are dropped so that no client (requests, aiohttp, curl) can send
    loopback traffic anywhere else, whatever the shell exports.
    """
    env = {key: value for key, value in os.environ.items()
           if not key.lower().endswith("_proxy")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [batchfetch_path,
                                                       env.get("PYTHONPATH")]))
    return env


def client_command(client: str, workload: Workload, url_file: str) -> list[str]:
    command = [sys.executable, os.path.join(CLIENT_DIR, CLIENT_SCRIPTS[client]), url_file,
               "--concurrency", str(workload.concurrency), "--hosts", str(workload.hosts)]
    if workload.stream:
        command.append("--stream")
    # Auto peers retry and pace on their own; keep_defaults clients retry by default.
    own = client in AUTO_PEERS or client in workload.keep_defaults
    if workload.retries is not None and not own:
        command += ["--retries", str(workload.retries)]
    if workload.deadline is not None and not own:
        command += ["--deadline", str(workload.deadline)]
    if (workload.adaptive and client in ADAPTIVE_CLIENTS) or client == "batchfetch_adaptive":
        command.append("--adaptive")
    if client == "batchfetch_workers":
        command += ["--workers", str(WORKERS)]
    return command


def run_client(client: str, workload: Workload, repeat: int, url_file: str, server,
               env: dict[str, str], log_dir: str) -> Run:
    """Run ``client`` over ``url_file`` against ``server``; never raises for a bad run."""
    run = Run(workload.name, client, repeat, workload.count)
    stem = os.path.join(log_dir, f"{workload.name}-{client}-{repeat}")
    unloaded = server.unloaded_latency(workload.path) if workload.probe else None
    sampler = getattr(server, "open_connections_sampler", lambda: None)()
    if sampler is not None:
        sampler.sample()  # its own connection opens before the counter reads
    server.begin_run()  # before the counter reads: their requests are not the run's
    accepted_before = server.accepted()
    server_cpu_before = server.cpu_seconds()
    busy_before = procstat.machine_busy_seconds()
    started = time.monotonic()
    with open(stem + ".out", "wb") as out, open(stem + ".err", "wb") as err:
        process = subprocess.Popen(client_command(client, workload, url_file), stdout=out,
                                   stderr=err, env=env)
    # wait4 gives this one process's rusage (RUSAGE_CHILDREN would mix in every child
    # the harness ever had, and its ru_maxrss is a maximum over all of them).
    killer = threading.Timer(workload.timeout, process.kill)
    killer.start()
    if sampler is not None:
        sampler.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        killer.cancel()
        if sampler is not None:
            run.open_connections = sampler.stop()
    process.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
    run.wall = time.monotonic() - started
    busy = procstat.machine_busy_seconds() - busy_before
    run.server_cpu = server.cpu_seconds() - server_cpu_before
    # The "after" status request's own connection is counted too: take it off.
    run.connections = server.accepted() - accepted_before - 1
    run.server_stats = server.run_stats()
    if unloaded is not None:
        run.server_stats["unloaded_p50"] = unloaded
    run.cpu = usage.ru_utime + usage.ru_stime
    run.max_rss_kb = usage.ru_maxrss
    run.other_cpu = max(0.0, busy - run.cpu - run.server_cpu)
    if run.wall >= workload.timeout:
        run.problem = f"killed after {workload.timeout:.0f} s"
    elif process.returncode != 0:
        run.problem = f"exit code {process.returncode} (see {stem}.err){_last_line(stem + '.err')}"
    _read_report(run, stem + ".out")
    if not run.problem and run.ok != workload.count:
        run.problem = f"{workload.count - run.ok} of {workload.count} not ok"
    elif not run.problem and run.bytes != workload.count * workload.body_size:
        run.problem = f"read {run.bytes} body bytes, expected {workload.count * workload.body_size}"
    return run


def _read_report(run: Run, path: str) -> None:
    with open(path, "rb") as handle:
        lines = handle.read().decode(errors="replace").strip().splitlines()
    try:
        line = json.loads(lines[-1])
    except (IndexError, ValueError):
        run.problem = run.problem or "no report line"
        return
    run.ok, run.failed, run.bytes = line["ok"], line["failed"], line["bytes"]
    run.elapsed, run.errors = line["elapsed"], line.get("errors", {})
    run.attempts = line.get("attempts")
    run.parent_cpu = line.get("parent_cpu")


def _last_line(path: str) -> str:
    """The last line a failed client wrote to stderr (its error) after ": ", or "" if none."""
    with open(path, "rb") as handle:
        lines = handle.read().decode(errors="replace").strip().splitlines()
    return f": {lines[-1][:300]}" if lines else ""
