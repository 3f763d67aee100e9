"""What the benchmark needs installed, and the machine and versions it ran on.

nginx and its echo module come from Debian (apt), aiohttp and reqstorm from PyPI (pip,
into the interpreter running the harness). Nothing is installed when it is already there.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys

from .servers import ECHO_MODULE

APT_PACKAGES = ("nginx", "libnginx-mod-http-echo", "curl")
#: Module to look for -> what pip installs when it is missing (as setup.cfg's bench extra).
PIP_PACKAGES = {"aiohttp": "aiohttp >= 3.9", "reqstorm": "reqstorm >= 2.5",
                "geventhttpclient": "geventhttpclient >= 2.6"}


def missing() -> tuple[list[str], list[str]]:
    """(apt packages, pip packages) that are not installed yet."""
    apt = []
    if not shutil.which("nginx"):
        apt.append("nginx")
    if not os.path.exists(ECHO_MODULE):
        apt.append("libnginx-mod-http-echo")
    if not shutil.which("curl"):
        apt.append("curl")
    pip = [requirement for module, requirement in PIP_PACKAGES.items()
           if importlib.util.find_spec(module) is None]
    return apt, pip


def install(log) -> None:
    """Install whatever is missing; raise RuntimeError saying what to do when we cannot."""
    apt, pip = missing()
    if apt:
        if os.geteuid() != 0:
            raise RuntimeError("missing Debian packages; run as root, or: sudo apt-get install "
                               "-y " + " ".join(APT_PACKAGES))
        log(f"installing with apt-get: {' '.join(apt)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", *apt], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    if pip:
        log(f"installing with pip: {' '.join(pip)}")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *pip], check=True)
    apt, pip = missing()
    if apt or pip:
        raise RuntimeError(f"still missing after installing: {apt + pip}")


def _first_line(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except OSError:
        return "not found"
    return (done.stdout or done.stderr).strip().splitlines()[0]


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory() -> str:
    with open("/proc/meminfo", encoding="utf-8") as handle:
        kib = int(handle.readline().split()[1])
    return f"{kib / 1024 / 1024:.1f} GiB"


def batchfetch_origin(env: dict[str, str], repo: str) -> dict[str, str]:
    """Which batchfetch the clients import (version, path) and the working tree's commit."""
    code = "import batchfetch, os; print(batchfetch.__version__, os.path.dirname(batchfetch.__file__))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=30)
    version, _, path = done.stdout.strip().partition(" ")
    # The tree the clients import, which is not --batchfetch-path's when an editable
    # install's import finder (it comes before PYTHONPATH) points elsewhere: say so.
    tree = os.path.dirname(path) if path else repo
    commit = _first_line(["git", "-C", tree, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", tree, "status", "--porcelain", "--", "batchfetch"],
                           capture_output=True, text=True).stdout.strip()
    if path and os.path.realpath(tree) != os.path.realpath(repo):
        commit += (f"; not the --batchfetch-path {repo}: an editable install of {tree} "
                   "wins over PYTHONPATH")
    return {"version": version or done.stderr.strip()[-200:], "path": path,
            "commit": commit + (" + uncommitted changes in batchfetch/" if dirty else "")}


def describe(env: dict[str, str], repo: str) -> dict[str, str]:
    """The machine and software versions, as the report's first table shows them."""
    origin = batchfetch_origin(env, repo)
    nginx = _first_line(["nginx", "-v"]).split("/", 1)[-1]
    return {
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": _memory(),
        "OS": f"{_first_line(['sh', '-c', '. /etc/os-release && echo $PRETTY_NAME'])}, "
              f"Linux {platform.release()}",
        "Python": f"{platform.python_version()} ({sys.executable})",
        "batchfetch": f"{origin['version']} from {origin['path']} (commit {origin['commit']})",
        "gevent": _version("gevent"),
        "greenlet": _version("greenlet"),
        "grequests": _version("grequests"),
        "requests": _version("requests"),
        "urllib3": _version("urllib3"),
        "aiohttp": _version("aiohttp"),
        "reqstorm": _version("reqstorm"),
        "geventhttpclient": _version("geventhttpclient"),
        "nginx": f"{nginx} (echo module {_version_deb('libnginx-mod-http-echo')})",
        "curl": _first_line(["curl", "--version"]).split(" (")[0].replace("curl ", ""),
    }


def _version_deb(package: str) -> str:
    return _first_line(["dpkg-query", "-W", "-f", "${Version}", package])
