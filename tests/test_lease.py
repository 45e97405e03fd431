"""The lease of a job folder: live, stale, dead and requeued holders."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from tricklab.lease import LEASE_FILE, STALE_S, LeaseHeld, job_lease, live_holder


def write_lease(folder, **fields) -> None:
    lease = {"host": socket.gethostname(), "pid": 0, "slurm": None, "heartbeat": time.time(), **fields}
    (folder / LEASE_FILE).write_text(json.dumps(lease))


@pytest.fixture
def other_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_a_live_holder_keeps_the_job_and_is_named(tmp_path, other_process):
    write_lease(tmp_path, pid=other_process)
    with pytest.raises(LeaseHeld, match=f"pid {other_process} on host"), job_lease(tmp_path):
        pass
    assert json.loads((tmp_path / LEASE_FILE).read_text())["pid"] == other_process  # left as it was


def test_stale_dead_and_requeued_holders_are_taken_over(tmp_path, other_process, monkeypatch):
    write_lease(tmp_path, pid=other_process, heartbeat=time.time() - STALE_S - 1)
    assert live_holder(tmp_path) is None  # no heartbeat for too long
    write_lease(tmp_path, pid=2 ** 22 + 7)  # no such process on this host
    assert live_holder(tmp_path) is None
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    write_lease(tmp_path, host="another-node", pid=1, slurm="77")
    assert live_holder(tmp_path) is None  # our own run before SLURM requeued it
    write_lease(tmp_path, host="another-node", pid=1, slurm="78")
    assert live_holder(tmp_path) is not None  # another node's live run: cannot be checked but by its heartbeat


def test_holding_a_lease_writes_it_and_releases_it(tmp_path):
    with job_lease(tmp_path):
        lease = json.loads((tmp_path / LEASE_FILE).read_text())
        assert lease["host"] == socket.gethostname() and lease["heartbeat"] <= time.time()
    assert not (tmp_path / LEASE_FILE).exists()
