"""Wall time of one 8-job CPU sweep: Hydra's basic launcher (jobs one after another in the launching process,
torch using every core) against ``hydra/launcher=local hydra.launcher.workers=2`` (two worker processes, each
owning its share of the cores, one thread a core), and how close the local launcher comes to the best it could do.

    python benchmarks/sweep_parallel.py [--epochs 1] [--workers 2] [--repeats 1]

The fair ceiling is not ``workers``×: the basic launcher's one job already uses every core, and what runs outside
the jobs (start-up, Hydra's bookkeeping) is paid once either way. So the same 8 jobs are also swept by the basic
launcher with ``threads`` set to a worker's share of the cores, and every job's own wall time (``wall_time_s``
in its metrics.json: data, model, training, test) is read back. With B = a basic sweep's wall time and W = the
sum of its jobs' wall times, the ideal local sweep pays the serial part of the basic sweep at a worker's threads
(B - W) and that sweep's job time split perfectly over the workers (never less than its longest job):

    ceiling = B(all cores) / (B(worker threads) - W(worker threads) + max(W(worker threads) / workers, longest job))

Everything outside the jobs counts as serial, although a worker does part of it (Hydra's ``run_job``) in
parallel: the local launcher may come out slightly above this ceiling. Target: local reaches >= 0.9 of it.
The three sweeps run one after the other, in rounds (``--repeats``), each round in another order, and the
figures are medians: even on a quiet 2-core VM one sweep's time moves by 10-20% from run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
    """A finished sweep: its wall time from start to exit, and its jobs' own wall times (metrics.json)."""

    seconds: float
    jobs: float  # their sum
    longest: float

    @property
    def serial(self) -> float:
        """What the sweep spent outside its jobs: start-up, composing configs, Hydra's per-job bookkeeping."""
        return self.seconds - self.jobs


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
    jobs = [r["wall_time_s"] for r in records]
    return Sweep(seconds, sum(jobs), max(jobs))


def median_sweep(sweeps: list[Sweep]) -> Sweep:
    """Each figure's median over the repeats."""
    return Sweep(*(statistics.median(getattr(s, name) for s in sweeps) for name in ("seconds", "jobs", "longest")))


def ceiling(basic: Sweep, basic_at_worker_threads: Sweep, workers: int) -> float:
    """The speed-up over ``basic`` of an ideal sweep on ``workers`` workers (see the module docstring)."""
    narrow = basic_at_worker_threads
    return basic.seconds / (narrow.serial + max(narrow.jobs / workers, narrow.longest))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="rounds of the three sweeps, each round in another "
                        "order; the figures are medians")
    opts = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    if not 1 <= opts.workers <= cores:
        sys.exit(f"--workers {opts.workers}: give 1 to {cores} (this machine's cores); the ceiling assumes each "
                 f"worker owns cores of its own")
    threads = cores // opts.workers  # a worker's share (tricklab.launch.devices.split_cores; the smaller one)
    arms = {
        f"basic launcher, {cores} thread(s)": ["hydra/launcher=basic"],
        f"basic launcher, {threads} thread(s)": ["hydra/launcher=basic", f"threads={threads}"],
        f"local launcher, {opts.workers} workers x {threads} thread(s)": [
            "hydra/launcher=local", f"hydra.launcher.workers={opts.workers}", "hydra.launcher.gpus=[]"],
    }
    runs: dict[str, list[Sweep]] = {name: [] for name in arms}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        for round_ in range(opts.repeats):
            names = list(arms)[round_ % 3:] + list(arms)[:round_ % 3]  # no arm always first
            for i, name in enumerate(names):
                runs[name].append(timed_sweep(arms[name], opts.epochs, Path(tmp) / f"{round_}-{i}", data_dir))
    basic, narrow, local = (median_sweep(sweeps) for sweeps in runs.values())
    best = ceiling(basic, narrow, opts.workers)
    achieved = basic.seconds / local.seconds
    print(f"cores: {cores}, {JOBS} jobs x {opts.epochs} epoch(s) (Fashion-MNIST, MLP), "
          f"{'median of ' if opts.repeats > 1 else ''}{opts.repeats} run(s) each")
    for (name, sweeps), sweep in zip(runs.items(), (basic, narrow, local), strict=True):
        serial = f"outside jobs {sweep.serial:5.1f} s" if sweep is not local else "(jobs in parallel)"
        every = "  (" + ", ".join(f"{s.seconds:.1f}" for s in sweeps) + ")" if opts.repeats > 1 else ""
        print(f"{name:<44} {sweep.seconds:7.1f} s   jobs {sweep.jobs:6.1f} s   {serial}{every}")
    print(f"the jobs' time at {threads} thread(s) / at {cores}: {narrow.jobs / basic.jobs:.2f}")
    print(f"speed-up basic/local: {achieved:.2f}x   ceiling: {best:.2f}x   "
          f"achieved/ceiling: {achieved / best:.2f}   (target: >= 0.9)")


if __name__ == "__main__":
    main()
