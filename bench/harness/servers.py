"""The loopback servers the clients hit: nginx (W1-W4) and the Python fault server (W5).

Both are started by the harness, stopped by the pid it started (nginx's master from
its own pid file; never by name), listen only on 127.0.0.0/8, and count the TCP
connections they accept, so a run's connections are the counter's difference.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from . import procstat

ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
#: W4 spreads its URLs over 127.0.0.1 .. 127.0.0.HOSTS (all of 127/8 is loopback on Linux).
HOSTS = 50
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
    access_log off;
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
        location = /delay {{
            echo_sleep 0.1;
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


def _get(port: int, path: str) -> bytes:
    # http.client, not urllib: urllib would honour *_proxy variables.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.read()
    finally:
        connection.close()


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
    """nginx on 127.0.0.1:PORT and 127.0.0.2..127.0.0.50:PORT, config in a temp dir.

    Locations: ``/1k`` (1 KiB static file), ``/delay`` (100 ms, then "ok"),
    ``/nginx_status`` (stub_status, for the accepted-connections counter).
    """

    name = "nginx"

    def __init__(self, workdir: str) -> None:
        self.dir = tempfile.mkdtemp(prefix="nginx-", dir=workdir)
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
        with open(os.path.join(self.dir, "www", "1k"), "wb") as body:
            body.write(b"x" * 1023 + b"\n")
        os.chmod(os.path.join(self.dir, "www", "1k"), 0o644)
        listens = "\n".join(f"        listen 127.0.0.{host}:{self.port} backlog=4096;"
                            for host in range(1, HOSTS + 1))
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w", encoding="utf-8") as handle:
            handle.write(NGINX_CONF.format(echo_module=ECHO_MODULE, dir=self.dir,
                                           listens=listens, nofile=20000,
                                           connections=16000))
        log = os.path.join(self.dir, "error.log")
        self.process = subprocess.Popen(["nginx", "-c", conf, "-p", self.dir, "-e", log],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_until_up(self.port, "/nginx_status", self.process, log)
        self.workers = procstat.children(self.master_pid())
        return self

    def master_pid(self) -> int:
        with open(os.path.join(self.dir, "nginx.pid"), encoding="ascii") as handle:
            return int(handle.read().strip())

    def accepted(self) -> int:
        """stub_status's "accepts" counter (this status request's own connection included)."""
        lines = _get(self.port, "/nginx_status").decode().splitlines()
        return int(lines[2].split()[0])

    def cpu_seconds(self) -> float:
        return procstat.cpu_seconds(self.workers)

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
        self.log = os.path.join(workdir, "faultserver.log")
        self.process: subprocess.Popen | None = None

    def url(self, path: str, host: int = 1) -> str:
        return f"http://127.0.0.{host}:{self.port}{path}"

    def start(self) -> "FaultServer":
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, os.path.join(BENCH_DIR, "faultserver.py"), "--port",
                 str(self.port)], stdout=log, stderr=subprocess.STDOUT)
        _wait_until_up(self.port, "/stats", self.process, self.log)
        return self

    def stats(self) -> dict:
        return json.loads(_get(self.port, "/stats"))

    def accepted(self) -> int:
        return self.stats()["accepted"]

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
