"""Summaries of py-spy's raw (collapsed-stack) output: own time per function and per layer.

Samples of gevent's thread-pool worker are dropped: that native thread waits on a
lock for DNS work, and py-spy cannot tell that wait from running.
"""
from __future__ import annotations

import collections
import re

#: Which layer a frame's file belongs to, first match wins.
LAYERS = (
    ("batchfetch_client.py", "benchmark client"),
    ("batchfetch/", "batchfetch"),
    ("grequests", "grequests"),
    ("requests/", "requests"),
    ("urllib3/", "urllib3"),
    ("gevent/", "gevent"),
    ("http/client", "http.client"),
    ("email/", "email (header parsing)"),
    ("typing.py", "typing (runtime Protocol isinstance)"),
    ("cookiejar", "http.cookiejar"),
    ("urllib/parse", "urllib.parse"),
)
_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>.*?)(?::\d+)?\)$")
_IDLE_THREAD = "_WorkerGreenlet.run"


def _frame(text: str) -> tuple[str, str]:
    found = _FRAME.match(text)
    if not found:
        return text or "(native)", ""
    return found.group("name") or "(native)", found.group("file")


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "python3.11/", "python3.12/", "python3.13/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def layer(path: str) -> str:
    for marker, name in LAYERS:
        if marker in path:
            return name
    return "other: " + (_short(path) or "native/hub")


def summarize(raw_path: str, top: int = 15) -> str:
    """A text report: samples, top functions by own time, own time by layer."""
    own: collections.Counter[str] = collections.Counter()
    layers: collections.Counter[str] = collections.Counter()
    total = dropped = 0
    with open(raw_path, encoding="utf-8") as handle:
        for line in handle:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit():
                continue
            if _IDLE_THREAD in stack:
                dropped += int(count)
                continue
            name, path = _frame(stack.split(";")[-1])
            own[f"{name} ({_short(path)})"] += int(count)
            layers[layer(path)] += int(count)
            total += int(count)
    lines = [f"{total} samples ({dropped} of gevent's idle thread-pool worker dropped)", "",
             f"top {top} functions by own time:"]
    lines += [f"  {count / total:6.1%}  {name}" for name, count in own.most_common(top)]
    lines += ["", "own time by layer:"]
    lines += [f"  {count / total:6.1%}  {name}" for name, count in layers.most_common(12)]
    return "\n".join(lines)


#: Where one W1 request's CPU goes, in the order a sample is attributed: the first part
#: with a frame anywhere in the sample's stack takes it (a marker ending in "." stands
#: for every method of that class; any other, for that function only).
W1_PARTS = (
    ("starting the interpreter and importing", ("_find_and_load",)),
    ("reading the answer's head (llhttp, recv)", ("ResponseHead.read_head",)),
    ("building the requests.Response", ("response_for",)),
    ("reading the body", ("_read_body",)),
    ("writing the request", ("Connection.send",)),
    ("taking a connection (pool, dropped check)", ("Connections.get",)),
    ("the rest of an attempt (deadline timer, grequests' request, LeanSession's headers "
     "and redirect check, the outcome)", ("LeanSession.request", "AsyncRequest.send",
                                          "run_attempt", "RequestsTransport.attempt")),
    ("the scheduler, retries, rows and the input (engines/, scheduling/)",
     ("_Batch.", "run_rows", "HostQueues.", "to_spec", "Politeness.", "Pacer.", "WaitClock.",
      "StartRate.")),
    ("gevent's hub (switching, timers, waiting)", ("Hub.run",)),
)


def parts(raw_path: str) -> dict[str, float]:
    """Each of :data:`W1_PARTS`' share of the samples (and "other"), gevent's idle thread
    dropped."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    with open(raw_path, encoding="utf-8") as handle:
        for line in handle:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit() or _IDLE_THREAD in stack:
                continue
            names = [_frame(frame)[0] for frame in stack.split(";")]
            label = next((label for label, markers in W1_PARTS
                          if any(name.startswith(marker) if marker.endswith(".")
                                 else name == marker for marker in markers for name in names)),
                         "other")
            counts[label] += int(count)
            total += int(count)
    return {label: counts[label] / total for label, _ in (*W1_PARTS, ("other", ()))
            if total}


def py_spy() -> str:
    """py-spy's path (installed with pip when missing)."""
    import os
    import shutil
    import subprocess
    import sys

    found = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(found):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)
        found = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return found
