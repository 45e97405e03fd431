"""Wall time of one 8-job CPU sweep: Hydra's basic launcher (jobs one after another in the launching process,
torch using every core) against ``hydra/launcher=local hydra.launcher.workers=2`` (two worker processes, each
owning its share of the cores, one thread a core), and how close the local launcher comes to the best it could do.

    python benchmarks/sweep_parallel.py [--epochs 1] [--workers 2]

The fair ceiling is not ``workers``×: the basic launcher's one job already uses every core, and what runs outside
the jobs (start-up, Hydra's bookkeeping) is paid once either way. So the same 8 jobs are also swept by the basic
launcher with ``threads`` set to a worker's share of the cores, and every job's own wall time (``wall_time_s``
in its metrics.json: data, model, training, test) is read back. With B = a basic sweep's wall time and W = the
sum of its jobs' wall times, the ideal local sweep pays the serial part of the basic sweep at a worker's threads
(B - W) and that sweep's job time split perfectly over the workers (never less than its longest job):

    ceiling = B(all cores) / (B(worker threads) - W(worker threads) + max(W(worker threads) / workers, longest job))

Everything outside the jobs counts as serial, although a worker does part of it (Hydra's ``run_job``) in
parallel: the local launcher may come out slightly above this ceiling. Target: local reaches >= 0.9 of it.
The three sweeps run one after the other; on a shared machine the ratios move by ±20%: run it on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# 8 jobs: 2 inits x 2 norms x 2 seeds, MLP on Fashion-MNIST (60k images, Debian's dataset-fashion-mnist): jobs of
# a few seconds, so that start-up (~8 s of imports, paid once per process) does not hide the training time.
GRID = ["data=fashion_mnist", "init=glorot,he", "norm=none,batch", "seed=0,1"]
JOBS = 8


@dataclass(frozen=True)
class Sweep:
    """A finished sweep: its wall time, from start to exit, and each job's own wall time (metrics.json)."""

    seconds: float
    job_seconds: list[float]

    @property
    def serial(self) -> float:
        """What the sweep spent outside its jobs: start-up, composing configs, Hydra's per-job bookkeeping."""
        return self.seconds - sum(self.job_seconds)


def timed_sweep(overrides: list[str], epochs: int, out: Path, data_dir: Path) -> Sweep:
    """Run ``python train.py -m <overrides> <GRID>``; fails loudly unless every job completed."""
    args = [sys.executable, str(ROOT / "train.py"), "-m", *overrides, *GRID, f"trainer.max_epochs={epochs}",
            "logger=none", "callbacks.progress_bar=none", f"paths.output_dir={out}", f"paths.data_dir={data_dir}"]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    started = time.perf_counter()
    result = subprocess.run(args, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"sweep {overrides} failed:\n{result.stderr[-3000:]}")
    records = [json.loads(p.read_text()) for p in out.glob("multirun/*/*/metrics.json")]
    assert [r["status"] for r in records] == ["completed"] * JOBS, [r["status"] for r in records]
    return Sweep(seconds, [r["wall_time_s"] for r in records])


def ceiling(basic: Sweep, basic_at_worker_threads: Sweep, workers: int) -> float:
    """The speed-up over ``basic`` of an ideal sweep on ``workers`` workers (see the module docstring)."""
    jobs = basic_at_worker_threads.job_seconds
    ideal = basic_at_worker_threads.serial + max(sum(jobs) / workers, max(jobs))
    return basic.seconds / ideal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    opts = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    if not 1 <= opts.workers <= cores:
        sys.exit(f"--workers {opts.workers}: give 1 to {cores} (this machine's cores); the ceiling assumes each "
                 f"worker owns cores of its own")
    threads = cores // opts.workers  # a worker's share (tricklab.launch.devices.split_cores; the smaller one)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        basic = timed_sweep(["hydra/launcher=basic"], opts.epochs, Path(tmp) / "basic", data_dir)
        narrow = timed_sweep(["hydra/launcher=basic", f"threads={threads}"], opts.epochs, Path(tmp) / "narrow",
                             data_dir)
        local = timed_sweep(["hydra/launcher=local", f"hydra.launcher.workers={opts.workers}",
                             "hydra.launcher.gpus=[]"], opts.epochs, Path(tmp) / "local", data_dir)
    best = ceiling(basic, narrow, opts.workers)
    achieved = basic.seconds / local.seconds
    print(f"cores: {cores}, {JOBS} jobs x {opts.epochs} epoch(s) (Fashion-MNIST, MLP)")
    for name, sweep in ((f"basic launcher, {cores} thread(s)", basic),
                        (f"basic launcher, {threads} thread(s)", narrow)):
        print(f"{name:<44} {sweep.seconds:7.1f} s   jobs {sum(sweep.job_seconds):6.1f} s   "
              f"outside jobs {sweep.serial:5.1f} s")
    print(f"{f'local launcher, {opts.workers} workers x {threads} thread(s)':<44} {local.seconds:7.1f} s   "
          f"jobs {sum(local.job_seconds):6.1f} s   (in parallel)")
    print(f"the jobs' time at {threads} thread(s) / at {cores}: "
          f"{sum(narrow.job_seconds) / sum(basic.job_seconds):.2f}")
    print(f"speed-up basic/local: {achieved:.2f}x   ceiling: {best:.2f}x   "
          f"achieved/ceiling: {achieved / best:.2f}   (target: >= 0.9)")


if __name__ == "__main__":
    main()
