"""A run folder's state, read from its metrics.json: its status, and whether a resume (of a sweep, or a single run
given its folder again) skips it as finished or runs it again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tricklab.results import read_metrics

# Jobs a resumed sweep does not run again: their result is recorded (a divergence is a result; rerunning it
# would repeat it). Failed, interrupted and cut-short ("running") jobs run again.
DONE = ("completed", "diverged")


def finished(job_dir: Path, rerun: list[str] | None = None) -> str | None:
    """The status of a job a resume skips (one of DONE, less those ``rerun=[...]`` asks to run again), or None
    when the job is to run."""
    status = job_status(job_dir)
    return status if status in DONE and status not in (rerun or []) else None


def runs_again(config: Any) -> list[str]:
    """The finished statuses a resumed sweep runs again: ``rerun=[...]``, or every one with ``overwrite=true``,
    which trains each job of the sweep again from the start, as it does a single run (its last.ckpt unused)."""
    return list(DONE) if config.get("overwrite") else list(config.get("rerun") or [])


def job_status(job_dir: Path) -> str | None:
    """The status in a job's metrics.json, or None when it has none."""
    try:
        record = read_metrics(job_dir)
    except (OSError, json.JSONDecodeError):
        return None
    return record.get("status") if record else None
