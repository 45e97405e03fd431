"""A lease per job folder: the process running a job says so (host, pid, heartbeat), so a second launcher
resuming the same sweep, or a second ``python train.py`` given the same ``hydra.run.dir``, does not run the
job too and overwrite it.

The lease is ``<job folder>/.lease.json``, created with O_EXCL and refreshed every HEARTBEAT_S seconds by a
thread of the job's process. It is *live* while its heartbeat is younger than STALE_S seconds and, on this host,
its process exists; a stale lease (its holder was killed, its node died) is taken over. A SLURM task requeued
on another node takes over the lease its own earlier run left (same job and array task id) at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tricklab.errors import TricklabError
from tricklab.results import write_json_atomic

LEASE_FILE = ".lease.json"
HEARTBEAT_S = 10.0
STALE_S = 60.0  # 6 missed heartbeats: the holder is gone


class LeaseHeld(TricklabError):
    """Another live process runs this job."""


def _slurm_task() -> str | None:
    """This process's SLURM task (array job and index, or job id), which a requeued run keeps."""
    env = os.environ
    if "SLURM_ARRAY_JOB_ID" in env:
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID', '')}"
    return env.get("SLURM_JOB_ID")


def _mine() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm": _slurm_task(), "heartbeat": time.time()}


def live_holder(job_dir: Path) -> dict[str, Any] | None:
    """The lease of the live process running the job in ``job_dir``; None when there is none (or it is ours)."""
    try:
        lease = json.loads((Path(job_dir) / LEASE_FILE).read_text())
    except (OSError, ValueError):
        return None
    me = _mine()
    if (lease.get("host"), lease.get("pid")) == (me["host"], me["pid"]):
        return None
    if me["slurm"] is not None and lease.get("slurm") == me["slurm"]:
        return None  # our own earlier run, requeued by SLURM
    if time.time() - float(lease.get("heartbeat", 0)) > STALE_S:
        return None
    if lease.get("host") == me["host"] and not _exists(int(lease.get("pid", 0))):
        return None
    return lease


def describe(lease: dict[str, Any]) -> str:
    """``pid 123 on host gpu7, heartbeat 4 s ago``."""
    return f"pid {lease.get('pid')} on host {lease.get('host')}, heartbeat {time.time() - lease['heartbeat']:.0f} s ago"


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return pid > 0


@contextlib.contextmanager
def job_lease(job_dir: Path) -> Iterator[None]:
    """Hold the lease of ``job_dir`` for the block (LeaseHeld if a live process holds it), heartbeat included."""
    path = Path(job_dir) / LEASE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # O_EXCL: of two processes starting the job at once, one creates the lease
        with os.fdopen(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY), "w") as f:
            json.dump(_mine(), f)
    except FileExistsError:
        holder = live_holder(job_dir)
        if holder is not None:
            raise LeaseHeld(f"{job_dir} is being run by {describe(holder)}; not run again here. A lease goes "
                            f"stale {STALE_S:.0f} s after its last heartbeat ({LEASE_FILE} in the job "
                            f"folder).") from None
        write_json_atomic(path, _mine())  # a stale lease, or our own: taken over
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            write_json_atomic(path, _mine())

    thread = threading.Thread(target=beat, name="tricklab-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # the lease only, never a result


@contextlib.contextmanager
def job_leases(job_dirs: list[Path]) -> Iterator[None]:
    """Hold the leases of every folder in ``job_dirs`` (a fused pack's jobs) for the block."""
    with contextlib.ExitStack() as stack:
        for job_dir in job_dirs:
            stack.enter_context(job_lease(job_dir))
        yield
