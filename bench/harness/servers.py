"""The loopback servers: nginx (W1-W4), the fault server (W5) and the pace server (W8-W10).

All are started by the harness, stopped by the pid it started (nginx's master from
its own pid file; never by name), listen only on 127.0.0.0/8, and count the TCP
connections they accept, so a run's connections are the counter's difference. The
pace server also counts what each run drew from it (429s, 504s, latencies) from one
``begin_run`` to the next.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import sys
import tempfile
import time

from . import procstat

ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
#: W4 spreads its URLs over 127.0.0.1 .. 127.0.0.HOSTS (all of 127/8 is loopback on Linux).
HOSTS = 50
#: W6 over 127.0.0.1 .. 127.0.0.MANY_HOSTS: more hosts than its concurrency.
MANY_HOSTS = 250
BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NGINX_CONF = """\
# Written by bench/harness/servers.py for one benchmark session.
load_module {echo_module};
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_rlimit_nofile {nofile};
events {{
    worker_connections {connections};
}}
http {{
    {access_log}
    # One client connection may carry a whole run; nginx must never close it first.
    # Nor an idle one: a pool that reuses its most recent connection first (urllib3's
    # LIFO) leaves the last one idle whenever fewer requests are in flight for a while,
    # and over a 5-minute W3M nginx's default 75 s (60 s here before) closed 36 of them,
    # each reopened at its next use and counted as a connection (measured: 5 s made a
    # 100,000-URL run open 159, 600 s exactly 100).
    keepalive_requests 1000000;
    keepalive_timeout 3600s;
    default_type application/octet-stream;
    client_body_temp_path {dir}/temp/body;
    proxy_temp_path {dir}/temp/proxy;
    fastcgi_temp_path {dir}/temp/fastcgi;
    uwsgi_temp_path {dir}/temp/uwsgi;
    scgi_temp_path {dir}/temp/scgi;
    server {{
{listens}
        root {dir}/www;
        location = /1k {{ }}
        location = /1m {{ }}
        location = /delay {{
            echo_sleep 0.1;
            echo ok;
        }}
        location = /delay50 {{
            echo_sleep 0.05;
            echo ok;
        }}
        location = /nginx_status {{
            stub_status;
        }}
    }}
}}
"""


def free_port() -> int:
    """A port that is free on 127.0.0.1 now (the server binds it right after)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``."""
    while True:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.05)


def _get(port: int, path: str) -> bytes:
    # http.client, not urllib: urllib would honour *_proxy variables.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.read()
    finally:
        connection.close()


class OpenConnections(threading.Thread):
    """The most connections nginx had open at once during a run, sampled every 10 ms over
    one kept-alive status connection (its own is not counted, nor in "accepted": the
    harness subtracts it). A peak shorter than 10 ms can be missed: a lower bound."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.most = 0
        self._stopping = threading.Event()

    def sample(self) -> int:
        self.connection.request("GET", "/nginx_status")
        first = self.connection.getresponse().read().decode().splitlines()[0]
        return int(first.split(":")[1]) - 1

    def run(self) -> None:
        while not self._stopping.wait(0.01):
            self.most = max(self.most, self.sample())

    def stop(self) -> int:
        self._stopping.set()
        self.join()
        self.connection.close()
        return self.most


def _wait_until_up(port: int, path: str, process: subprocess.Popen, log: str) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            _get(port, path)
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start; see {log}") from None
            time.sleep(0.05)


class Nginx:
    """nginx on 127.0.0.1:PORT and 127.0.0.2..127.0.0.250:PORT, config in a temp dir.

    Locations: ``/1k`` (1 KiB static file), ``/1m`` (1 MiB static file), ``/delay`` (100 ms,
    then "ok"), ``/delay50`` (50 ms, then "ok"),
    ``/nginx_status`` (stub_status, for the accepted-connections counter).
    """

    name = "nginx"

    def __init__(self, workdir: str, access_log: bool = False) -> None:
        """``access_log``: log each request's status and body bytes to ``self.log``."""
        self.dir = tempfile.mkdtemp(prefix="nginx-", dir=workdir)
        self.log = os.path.join(self.dir, "access.log") if access_log else None
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.workers: list[int] = []

    def url(self, path: str, host: int = 1) -> str:
        return f"http://127.0.0.{host}:{self.port}{path}"

    def start(self) -> "Nginx":
        for sub in ("www", "temp"):
            os.makedirs(os.path.join(self.dir, sub))
        # Workers run as nobody: they need to reach and read the static file.
        for path in (self.dir, os.path.join(self.dir, "www")):
            os.chmod(path, 0o755)
        for name, size in (("1k", 1 << 10), ("1m", 1 << 20)):
            with open(os.path.join(self.dir, "www", name), "wb") as body:
                body.write(b"x" * (size - 1) + b"\n")
            os.chmod(os.path.join(self.dir, "www", name), 0o644)
        listens = "\n".join(f"        listen 127.0.0.{host}:{self.port} backlog=4096;"
                            for host in range(1, MANY_HOSTS + 1))
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w", encoding="utf-8") as handle:
            handle.write(NGINX_CONF.format(
                echo_module=ECHO_MODULE, dir=self.dir, listens=listens, nofile=20000,
                connections=16000,
                access_log=(f"log_format sent '$status $body_bytes_sent';\n    "
                            f"access_log {self.log} sent;") if self.log else "access_log off;"))
        log = os.path.join(self.dir, "error.log")
        self.process = subprocess.Popen(["nginx", "-c", conf, "-p", self.dir, "-e", log],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_until_up(self.port, "/nginx_status", self.process, log)
        self.workers = procstat.children(self.master_pid())
        return self

    def describe(self) -> str:
        return f"nginx master {self.master_pid()} on 127.0.0.1-127.0.0.{MANY_HOSTS}:{self.port}"

    def master_pid(self) -> int:
        with open(os.path.join(self.dir, "nginx.pid"), encoding="ascii") as handle:
            return int(handle.read().strip())

    def accepted(self) -> int:
        """stub_status's "accepts" counter (this status request's own connection included)."""
        lines = _get(self.port, "/nginx_status").decode().splitlines()
        return int(lines[2].split()[0])

    def open_connections_sampler(self) -> "OpenConnections":
        """A sampler of stub_status's "Active connections" while a run lasts."""
        return OpenConnections(self.port)

    def cpu_seconds(self) -> float:
        return procstat.cpu_seconds(self.workers)

    def begin_run(self) -> None:
        """nginx keeps no per-run counts (the pace server does)."""

    def run_stats(self) -> dict | None:
        return None

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.kill(self.master_pid(), signal.SIGQUIT)  # graceful: the pid from our pid file
        except (FileNotFoundError, ProcessLookupError):
            pass
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()  # our own child, by its pid
            self.process.wait()
        self.process = None


class FaultServer:
    """bench/faultserver.py on 127.0.0.1:PORT: 503-once and trickle routes for W5."""

    name = "faultserver"

    def __init__(self, workdir: str) -> None:
        self.port = free_port()
        self.log = os.path.join(workdir, f"{self.name}.log")
        self.process: subprocess.Popen | None = None

    def url(self, path: str, host: int = 1) -> str:
        return f"http://127.0.0.{host}:{self.port}{path}"

    def arguments(self) -> list[str]:
        return []

    def describe(self) -> str:
        return f"fault server {self.process.pid} on 127.0.0.1:{self.port}"

    def start(self) -> "FaultServer":
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, os.path.join(BENCH_DIR, f"{self.name}.py"), "--port",
                 str(self.port), *self.arguments()], stdout=log, stderr=subprocess.STDOUT)
        _wait_until_up(self.port, "/stats", self.process, self.log)
        return self

    def stats(self) -> dict:
        return json.loads(_get(self.port, "/stats"))

    def accepted(self) -> int:
        return self.stats()["accepted"]

    def begin_run(self) -> None:
        """The fault server keeps no per-run counts (the pace server does)."""

    def run_stats(self) -> dict | None:
        return None

    def cpu_seconds(self) -> float:
        return procstat.cpu_seconds([self.process.pid])

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


class PaceServer(FaultServer):
    """bench/paceserver.py on 127.0.0.1-127.0.0.50:PORT: rate limits and a busy backend (W8-W10).

    ``settings`` are its command-line options (``{"rate": 100, ...}``): the workloads
    define them, so the server and the ideal times the report uses cannot disagree.
    """

    name = "paceserver"

    def __init__(self, workdir: str, settings: dict[str, float]) -> None:
        super().__init__(workdir)
        self.settings = settings

    def describe(self) -> str:
        return f"pace server {self.process.pid} on 127.0.0.1-127.0.0.{HOSTS}:{self.port}"

    def arguments(self) -> list[str]:
        arguments = ["--hosts", str(HOSTS)]
        for option, value in self.settings.items():
            arguments += [f"--{option.replace('_', '-')}", str(value)]
        return arguments

    def begin_run(self) -> None:
        """Zero the per-run counts and refill the buckets: what follows is a new run."""
        _get(self.port, "/reset")

    def run_stats(self) -> dict:
        """What the run since ``begin_run`` drew: requests, 429s, 504s, latencies, times."""
        return self.stats()["run"]

    def unloaded_latency(self, path: str, requests: int = 20) -> float:
        """The server's p50 latency on ``path`` with one request at a time (starts a new run)."""
        self.begin_run()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            for _ in range(requests):
                connection.request("GET", path)
                connection.getresponse().read()
        finally:
            connection.close()
        return self.run_stats()["latency_p50"]


#: Every server a workload may name, in the order a session starts them.
KINDS = ("nginx", "faults", "pace")


def new(kind: str, workdir: str, pace_settings: dict[str, float]):
    """The server (not started yet) that a workload's ``server`` names, one of KINDS."""
    if kind == "nginx":
        return Nginx(workdir)
    if kind == "faults":
        return FaultServer(workdir)
    if kind == "pace":
        return PaceServer(workdir, pace_settings)
    raise ValueError(f"no server {kind!r}; one of {', '.join(KINDS)}")
