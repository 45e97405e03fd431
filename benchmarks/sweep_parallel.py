"""Wall time of one 8-job CPU sweep: Hydra's basic launcher (jobs one after another in the launching process,
torch using every core) against ``hydra/launcher=local hydra.launcher.workers=2`` (two worker processes, one
core and one thread each). Both run here, one after the other, on the same jobs; the ratio is what counts.

    python benchmarks/sweep_parallel.py [--epochs 1] [--workers 2]

Target on a 2-core machine: local is >= 1.4x faster.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# 8 jobs: 2 inits x 2 norms x 2 seeds, MLP on Fashion-MNIST (60k images, Debian's dataset-fashion-mnist): jobs of
# a few seconds, so that start-up (~8 s of imports, paid once per process) does not hide the training time.
GRID = ["data=fashion_mnist", "init=glorot,he", "norm=none,batch", "seed=0,1"]


def timed_sweep(launcher: list[str], epochs: int, out: Path, data_dir: Path) -> float:
    """Seconds the whole ``python train.py -m ...`` took, from start to exit; fails loudly if a job failed."""
    args = [sys.executable, str(ROOT / "train.py"), "-m", *launcher, *GRID, f"trainer.max_epochs={epochs}",
            "logger=none", "callbacks.progress_bar=none", f"paths.output_dir={out}", f"paths.data_dir={data_dir}"]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    started = time.perf_counter()
    result = subprocess.run(args, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"sweep {launcher} failed:\n{result.stderr[-3000:]}")
    statuses = [json.loads(p.read_text())["status"] for p in out.glob("multirun/*/*/metrics.json")]
    assert statuses == ["completed"] * 8, statuses
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        basic = timed_sweep(["hydra/launcher=basic"], opts.epochs, Path(tmp) / "basic", data_dir)
        local = timed_sweep(["hydra/launcher=local", f"hydra.launcher.workers={opts.workers}",
                             "hydra.launcher.gpus=[]"], opts.epochs, Path(tmp) / "local", data_dir)
    print(f"cores: {len(os.sched_getaffinity(0))}, 8 jobs x {opts.epochs} epoch(s) (Fashion-MNIST, MLP)")
    print(f"basic launcher (one job at a time, {len(os.sched_getaffinity(0))} threads): {basic:7.1f} s")
    print(f"local launcher ({opts.workers} workers, 1 thread each):    {local:7.1f} s")
    print(f"speed-up basic/local: {basic / local:.2f}x   (target on 2 cores: >= 1.4x)")


if __name__ == "__main__":
    main()
