"""A throw-away single-node SLURM cluster (Debian's slurm-wlm) for tests: munge, slurmctld and slurmd
started with a config written into a temporary folder, stopped afterwards.

Needs root (daemons run as root, SlurmUser=root), the slurm-wlm and munge packages, and free ports 6817/6818.
``start`` returns None (and starts nothing lasting) when any of that is missing, so the caller can skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue")
CONF = """\
ClusterName=tricklab-test
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName={host} CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
"""


def unavailable_reason() -> str | None:
    """Why no test cluster can be started here, or None."""
    if os.geteuid() != 0:
        return "the test SLURM cluster runs its daemons as root"
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        return f"slurm-wlm/munge not installed (missing {', '.join(missing)}; apt-get install slurm-wlm)"
    for port in (6817, 6818):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return f"port {port} is taken (another slurmctld/slurmd runs here)"
    return None


@contextmanager
def local_slurm(folder: Path):
    """Start the cluster; yield the environment (SLURM_CONF) that sbatch and submitit need; stop it."""
    host = socket.gethostname()
    for sub in ("state", "spool"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    conf = folder / "slurm.conf"
    conf.write_text(CONF.format(host=host, dir=folder, cpus=os.cpu_count()))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    if subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        subprocess.run(["munged", "--force"], check=True, capture_output=True)
    subprocess.run(["slurmctld", "-f", str(conf)], env=env, check=True)
    subprocess.run(["slurmd", "-f", str(conf)], env=env, check=True)
    try:
        _wait_until_idle(env)
        yield env
    finally:
        _wait_until_idle(env)  # finished jobs' steps end before their daemon goes
        for pid_file in ("slurmd.pid", "slurmctld.pid"):
            path = folder / pid_file
            if path.is_file():
                os.kill(int(path.read_text()), signal.SIGTERM)


def _wait_until_idle(env: dict[str, str], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout
        queue = subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True).stdout
        if state.strip() == "idle" and not queue.strip():
            return
        time.sleep(0.5)
    raise RuntimeError("the test SLURM node did not become idle within 30 s")
