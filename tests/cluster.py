"""A real redis-server on loopback and real ``batchfetch-worker`` processes, for the
distributed engine's tests: each started here, its pid recorded, and stopped by that pid.

Without redis-server the tests skip with the reason, except under ``CI=true``, where they
fail: CI installs it (``.ci/run``).
"""
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys

import gevent
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def child_environment() -> dict[str, str]:
    return {name: value for name, value in dict(os.environ, PYTHONPATH=str(ROOT)).items()
            if not name.startswith("BATCHFETCH_")
            and name.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop ``process`` by its pid: ``sig``, then SIGKILL if it lingers."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stop_all(processes, sig: int = signal.SIGTERM) -> None:
    """Stop several at once: a worker's warm shutdown takes seconds, and they overlap."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(sig)
    for process in processes:
        stop(process, sig)


class RedisServer:
    """``redis-server`` on 127.0.0.1 with no persistence, in its own directory."""

    def __init__(self, directory: pathlib.Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            reason = "redis-server is not installed (apt-get install redis-server)"
            if os.environ.get("CI") == "true":
                pytest.fail(f"{reason}: CI must install it")
            pytest.skip(reason)
        self.port = free_port()
        self.directory = directory
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while True:  # until it answers; pytest-timeout bounds a server that never does
            try:
                with socket.create_connection(("127.0.0.1", self.port)) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if self.process.poll() is not None:
                    pytest.fail(f"redis-server exited with {self.process.returncode}")
                gevent.sleep(0.05)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop(self.process, sig)


class Worker:
    """One ``batchfetch-worker`` process (``--processes 1``), logging to a file."""

    def __init__(self, broker: str, name: str, directory: pathlib.Path,
                 max_in_flight: int = 20, cwd: pathlib.Path | None = None) -> None:
        self.name = name
        self.log = directory / f"{name}.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "batchfetch.cli.worker", "--broker", broker,
                 "--processes", "1", "--name", name, "--max-in-flight", str(max_in_flight),
                 "--loglevel", "info"],
                stdout=log, stderr=subprocess.STDOUT, env=child_environment(),
                cwd=cwd or directory)
        while b" ready." not in self.log.read_bytes():
            if self.process.poll() is not None:
                pytest.fail(f"worker {name} exited: {self.log.read_text()}")
            gevent.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop(self.process, sig)
