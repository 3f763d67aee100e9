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
