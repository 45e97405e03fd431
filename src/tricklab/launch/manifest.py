"""What a sweep records of its jobs: ``sweep.json`` (each job's own status is in its metrics.json: tricklab.run.status).

``sweep.json`` in the sweep folder holds the command(s) that launched the sweep, its overrides and one entry
per job folder (overrides, status, device, worker pid, times, error, return value, the launch that ran it).
It is rewritten atomically each time a job starts or ends, so it is always a complete, readable file.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
from pathlib import Path
from typing import Any

from tricklab.invocation import command_line
from tricklab.launch.messages import OUTPUT_LOG
from tricklab.results import (
    FINAL_STATUSES,
    METRICS_FILE,
    read_metrics,
    set_aside_unreadable,
    timestamp,
    write_json_atomic,
)

MANIFEST_FILE = "sweep.json"  # of the job statuses (FINAL_STATUSES), "failed" makes the sweep exit non-zero


def mark_failed(job_dir: Path, error: str) -> None:
    """Record a job that died before it could record itself: status failed and the error, in its metrics.json."""
    try:
        record = read_metrics(job_dir) or {"run_dir": str(job_dir)}
    except (OSError, ValueError):  # unreadable: kept aside, the failure recorded anew
        set_aside_unreadable(job_dir)
        record = {"run_dir": str(job_dir)}
    record.update(status="failed", error=error)
    write_json_atomic(job_dir / METRICS_FILE, record)


class SweepManifest:
    """``sweep.json``: the sweep's launches and its jobs, keyed by job folder. A resumed sweep keeps every job
    its folder has ever run (a resume with another command drops none), each with the launch that ran it
    (``launch``: an index into ``launches``) and the earlier attempts of that job (``attempts``)."""

    def __init__(self, sweep_dir: Path, overrides: list[str]) -> None:
        self.path = sweep_dir / MANIFEST_FILE
        old = _earlier_manifest(self.path)
        launches = [*old.get("launches", []), {"command": shlex.join(command_line()), "started": timestamp(),
                                               "overrides": overrides, "host": socket.gethostname(),
                                               "pid": os.getpid()}]
        self.data: dict[str, Any] = {"sweep_dir": str(sweep_dir), "overrides": overrides, "launches": launches,
                                     "jobs": {job["dir"]: job for job in old.get("jobs", {}).values()}}
        self.launch = len(launches) - 1
        self.folders: dict[int, str] = {}  # this launch's job numbers -> their folders

    def add(self, num: int, overrides: list[str], job_dir: Path, status: str = "pending", **fields: Any) -> None:
        """List job ``num`` (its overrides and folder) with ``status`` as run by this launch; an earlier run of
        the folder becomes an attempt (a skipped job keeps the launch that ran it). Written on ``write``."""
        self.folders[num] = job_dir.name
        earlier = self.data["jobs"].get(job_dir.name)
        entry = {"num": num, "overrides": overrides, "dir": job_dir.name, "status": status, "launch": self.launch,
                 **fields}
        if earlier and fields.get("skipped"):
            entry["launch"] = earlier.get("launch", entry["launch"])
            entry["attempts"] = earlier.get("attempts", [])
        elif earlier:
            entry["attempts"] = [*earlier.get("attempts", []),
                                 {k: v for k, v in earlier.items() if k not in ("attempts", "skipped")}]
        self.data["jobs"][job_dir.name] = entry

    def status_of(self, num: int) -> str:
        """The status this manifest holds for job ``num`` of this launch."""
        return self.data["jobs"][self.folders[num]]["status"]

    def update(self, num: int, **fields: Any) -> None:
        """Change fields of job ``num`` and write the manifest."""
        self.data["jobs"][self.folders[num]].update(fields)
        self.write()

    def write(self) -> None:
        """Merge what other launchers of this sweep wrote, recount the statuses and rewrite sweep.json atomically,
        under an exclusive lock on ``sweep.json.lock`` (filelock's: flock where the disk has it, which is local
        disks and most shared ones). Imported here: train.py imports this module, and its --help stays fast."""
        from filelock import FileLock

        with FileLock(self.path.with_name(self.path.name + ".lock")):
            self._merge_from_disk()
            jobs = self.data["jobs"].values()
            self.data["counts"] = {s: sum(j["status"] == s for j in jobs)
                                   for s in ("pending", "running", *FINAL_STATUSES)}
            self.data["updated"] = timestamp()
            write_json_atomic(self.path, self.data)

    def _merge_from_disk(self) -> None:
        """Several launchers can work on one sweep (a SLURM array, machines on a shared disk, a search resumed
        twice): keep the launches and jobs the others wrote since; this launch's entries win for its folders."""
        try:
            disk = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(disk, dict):  # another launcher's write cannot be merged: ours replaces it
            return
        mine = self.data["launches"][self.launch]
        launches = disk.get("launches", [])
        launches = launches if mine in launches else [*launches, mine]
        old_index, self.launch = self.launch, launches.index(mine)
        ours = set(self.folders.values())
        jobs = {folder: job for folder, job in disk.get("jobs", {}).items() if folder not in ours}
        for folder in ours:
            entry = self.data["jobs"][folder]
            if entry.get("launch") == old_index and not entry.get("skipped"):
                entry["launch"] = self.launch
            jobs[folder] = entry
        self.data["launches"], self.data["jobs"] = launches, jobs

    def summary(self) -> str:
        """Counts by status, then one line per job that did not complete: status, overrides, log file."""
        jobs = self.data["jobs"].values()
        counts = {s: sum(j["status"] == s for j in jobs) for s in FINAL_STATUSES}
        skipped = sum(bool(j.get("skipped")) for j in jobs)
        lines = [f"Sweep {self.data['sweep_dir']}: {len(jobs)} jobs, {counts['completed']} completed"
                 f"{f' ({skipped} skipped: finished earlier)' if skipped else ''}, {counts['diverged']} diverged, "
                 f"{counts['failed']} failed" + "".join(f", {counts[s]} {s}" for s in ("interrupted", "pruned")
                                                         if counts[s])]
        for job in jobs:
            if job["status"] != "completed":
                log = Path(self.data["sweep_dir"]) / job["dir"] / OUTPUT_LOG
                error = f"  ({job['error']})" if job.get("error") else ""
                lines.append(f"  {job['status']:<9} {' '.join(job['overrides'])}  log: {log}{error}")
        lines.append(f"Manifest: {self.path}")
        return "\n".join(lines)


def _earlier_manifest(path: Path) -> dict[str, Any]:
    """The sweep.json an earlier launch wrote ({} when none). One that cannot be read (truncated, not an object)
    is renamed ``sweep.json.unreadable-<time>``, never deleted, and the sweep goes on: each job's status is in
    its own metrics.json, so the resume still skips what finished; only the earlier launches' record is lost
    from the new file (it stays in the renamed one)."""
    if not path.is_file():
        return {}
    try:
        old = json.loads(path.read_text())
        jobs = old.get("jobs", {}) if isinstance(old, dict) else None
        if isinstance(jobs, dict) and all(isinstance(job, dict) and "dir" in job for job in jobs.values()):
            return old
        why = "it is not a JSON object whose jobs each name their folder"
    except (OSError, ValueError) as err:
        why = str(err)
    moved = path.with_name(f"{path.name}.unreadable-{timestamp().replace(':', '')}-{os.getpid()}")
    path.replace(moved)
    print(f"tricklab: warning: {path} could not be read ({why}); kept as {moved.name}, and a new one is written. "
          f"Each job's status is read from its metrics.json, so finished jobs are still skipped.", file=sys.stderr)
    return {}

