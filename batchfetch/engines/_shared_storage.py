"""``save_dir`` on a distributed run: storage the driver and every worker must share, at
the same path. Two checks, files only: a worker writes a probe file the driver reads
back, and the driver puts a marker file there that each worker looks for before its
first chunk of the run.
"""
from __future__ import annotations

import contextlib
import os
import uuid

from ..errors import OptionError

__all__ = ["answer_probe", "check_probe_answer", "not_shared", "put_marker", "remove_marker",
           "run_marker"]


def run_marker(run: str) -> str:
    """The name of the file the driver puts in save_dir for ``run``."""
    return f".batchfetch-run-{run}"


def put_marker(save_dir: str, run: str) -> None:
    """Create save_dir (if need be) and the run's marker in it; OptionError if this
    machine cannot."""
    try:
        os.makedirs(save_dir, exist_ok=True)
        with open(os.path.join(save_dir, run_marker(run)), "w"):
            pass
    except OSError as exc:
        raise OptionError("save_dir", save_dir, "a directory this machine can write",
                          f"cannot write in {save_dir}: {exc.strerror or exc}") from None


def remove_marker(save_dir: str, run: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(save_dir, run_marker(run)))


def answer_probe(save_dir: str, token: str) -> tuple[str, str]:
    """Write ``token`` in a probe file of save_dir (a worker); its name, and the error
    ("" if none)."""
    name = f".batchfetch-probe-{token}"
    try:
        os.makedirs(save_dir, exist_ok=True)
        with open(os.path.join(save_dir, name), "w", encoding="utf-8") as out:
            out.write(token)
    except OSError as exc:
        return name, exc.strerror or str(exc)
    return name, ""


def check_probe_answer(save_dir: str, token: str, worker: str, name: str, error: str) -> None:
    """Read back the probe a worker wrote (the driver): OptionError if the worker could
    not write, or wrote where this machine does not see it."""
    if error:
        raise OptionError("save_dir", save_dir, "a directory the workers can write",
                          f"worker {worker} cannot write in {save_dir}: {error}")
    path = os.path.join(save_dir, name)
    try:
        with open(path, encoding="utf-8") as probe:
            seen = probe.read() == token
        os.unlink(path)
    except OSError:
        seen = False
    if not seen:
        raise OptionError("save_dir", save_dir, "storage the workers share",
                          f"{save_dir} is not storage the workers share: worker {worker} "
                          f"wrote {name} there, and this machine does not see it (mount the "
                          "same directory on every machine, at the same path)")


def not_shared(save_dir: str, run: str, worker: str) -> str:
    """Why ``worker`` cannot save the run's bodies in save_dir ("" when it can): it cannot
    write there, or does not see the driver's marker."""
    probe = os.path.join(save_dir, f".batchfetch-write-{uuid.uuid4().hex}")
    try:
        os.makedirs(save_dir, exist_ok=True)
        with open(probe, "wb"):
            pass
        os.unlink(probe)
    except OSError as exc:
        return f"worker {worker} cannot write in save_dir {save_dir}: {exc.strerror or exc}"
    if not os.path.exists(os.path.join(save_dir, run_marker(run))):
        return (f"worker {worker} does not see the driver's save_dir {save_dir} (its "
                f"{run_marker(run)} is not there): it must be storage every machine "
                "shares, at the same path")
    return ""
