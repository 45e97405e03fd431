"""Wall time of one 8-job CPU sweep: Hydra's basic launcher (jobs one after another in the launching process,
torch using every core) against ``hydra/launcher=local hydra.launcher.workers=2`` (two worker processes, one
core and one thread each). Both run here, one after the other, on the same jobs; the ratio is what counts.

    python benchmarks/sweep_parallel.py [--epochs 5] [--workers 2]

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
# 8 jobs: 2 inits x 2 norms x 2 seeds on the full MNIST-1D (4000 training signals), MLP.
GRID = ["init=glorot,he", "norm=none,batch", "seed=0,1"]


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


def warm_data_cache(data_dir: Path) -> None:
    """Generate MNIST-1D once beforehand, so that neither sweep pays for it."""
    from omegaconf import OmegaConf

    from tricklab.data.sources import load_mnist1d

    load_mnist1d(OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "data" / "mnist1d.yaml")), data_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        warm_data_cache(data_dir)
        basic = timed_sweep(["hydra/launcher=basic"], opts.epochs, Path(tmp) / "basic", data_dir)
        local = timed_sweep(["hydra/launcher=local", f"hydra.launcher.workers={opts.workers}",
                             "hydra.launcher.gpus=[]"], opts.epochs, Path(tmp) / "local", data_dir)
    print(f"cores: {len(os.sched_getaffinity(0))}, 8 jobs x {opts.epochs} epochs (MNIST-1D, MLP)")
    print(f"basic launcher (one job at a time, {len(os.sched_getaffinity(0))} threads): {basic:7.1f} s")
    print(f"local launcher ({opts.workers} workers, 1 thread each):    {local:7.1f} s")
    print(f"speed-up basic/local: {basic / local:.2f}x   (target on 2 cores: >= 1.4x)")


if __name__ == "__main__":
    main()
