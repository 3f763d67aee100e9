"""Reading another process's CPU time from /proc, to show a server is not the bottleneck."""
from __future__ import annotations

import os

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        text = handle.read()
    # The command name may hold spaces and parentheses: split after its last ')'.
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` (0 for a pid that is gone)."""
    total = 0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / _TICKS


def children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (nginx's workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(_stat_fields(int(entry))[1]) == pid:
                    found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue
    return found


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent in processes since boot (user, nice and system).

    Over a run, this minus the client's and the server's CPU is what other
    processes took: the benchmark shares the machine, and this says how much.
    Interrupt time is left out: loopback TCP work lands there, whoever causes it.
    """
    with open("/proc/stat", encoding="ascii") as handle:
        user, nice, system = (int(value) for value in handle.readline().split()[1:4])
    return (user + nice + system) / _TICKS
