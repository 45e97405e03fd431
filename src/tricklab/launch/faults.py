"""A full (or read-only) disk while a sweep or a search runs: one paragraph saying what happened, what is kept and
the exact command that resumes it, exit 1, no traceback.

Two places meet it: the sweep's own writes (sweep.json, a search's journal), and a job that Hydra's basic launcher
runs in the sweep's own process, whose fault stops the whole sweep there (the next job would meet the same disk).
Both name the sweep's resume command: a job's own "run the same command again" would start a new sweep.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

from tricklab.errors import disk_fault, exit_on_fault, fault_file
from tricklab.invocation import command_line

# The sweeps this process is launching now (innermost last), with what each is ("sweep", "search"): a job run
# in this process by the basic launcher belongs to the last one.
_LAUNCHING: list[tuple[Path, str]] = []

# How the jobs cut short by the fault go on, by what is resumed.
_CUT_SHORT = {
    "sweep": "jobs cut short continue from their last.ckpt",
    "search": "a trial cut short is marked failed and its parameters tried again (hydra.sweeper.retry_running)",
}


@contextlib.contextmanager
def disk_faults_told(sweep_dir: Path, what: str = "sweep") -> Iterator[None]:
    """Around launching the sweep in ``sweep_dir``: a disk fault of its own writes is told (``stopped``), and a
    job run in this process meanwhile tells its fault the same way (``launching_sweep_fault``)."""
    _LAUNCHING.append((sweep_dir, what))
    try:
        yield
    except OSError as err:
        if not disk_fault(err):
            raise
        exit_on_fault(stopped(sweep_dir, what, err))
    finally:
        _LAUNCHING.pop()


def launching_sweep_fault(err: OSError, job_dir: Path) -> str | None:
    """The paragraph for a disk fault of the job in ``job_dir`` when this process is launching its sweep (the
    basic launcher); None for a single run or a job in a worker process, which tells its own."""
    if not _LAUNCHING:
        return None
    sweep_dir, what = _LAUNCHING[-1]
    return stopped(sweep_dir, what, err, job_dir)


def stopped(sweep_dir: Path, what: str, err: OSError, job_dir: Path | None = None) -> str:
    """One paragraph: the sweep (or search) stopped, on what, what is kept and the command that resumes it."""
    where = fault_file(err) or "its record"
    during = f" (job {job_dir.relative_to(sweep_dir) if job_dir.is_relative_to(sweep_dir) else job_dir})" \
        if job_dir is not None else ""
    return (f"the {what} in {sweep_dir} stopped: {disk_fault(err)} while writing {where}{during}. The jobs that "
            f"finished keep their results (metrics.json, checkpoints and sweep.json are written whole); "
            f"{_CUT_SHORT[what]}. Free space (or fix the disk), then resume it: {resume_command(sweep_dir)}")


def resume_command(sweep_dir: Path) -> str:
    """The command that resumes the sweep in ``sweep_dir``: this one, its folder named by ``resume=``."""
    args = [arg for arg in sys.argv[1:] if not arg.startswith(("resume=", "hydra.sweep.dir="))]
    return shlex.join(command_line([*args, f"resume={sweep_dir}"]))
