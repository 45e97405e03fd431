"""What pruning saves: the same search (``hparams_search=optuna`` with a seeded random sampler, so both arms try
the same configs in the same order) on ``hydra/launcher=local`` workers, without a pruner and with one. Prints,
for each arm, the epochs trained, the wall time, the best validation accuracy and the winner's test accuracy.

    python benchmarks/search_pruning.py [--trials 24] [--epochs 10] [--workers 2] [--pruner median] [--subset N]

Target: the pruned search trains <= 60% of the epochs in <= 70% of the wall time, with the same winner or one
within 1 point of validation accuracy.
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

from tricklab.search.study import SearchSettings, open_study

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Arm:
    """One search's figures."""

    epochs: int
    wall_s: float
    best_trial: int
    best_val: float
    winner_test: float
    pruned: int


def search(out: Path, data_dir: Path, opts: argparse.Namespace, pruner: str) -> Arm:
    """Run one search in a fresh folder; its figures (fails loudly if the search failed)."""
    args = [sys.executable, str(ROOT / "train.py"), "hparams_search=optuna", "hydra/launcher=local",
            f"hydra.launcher.workers={opts.workers}", "hydra.launcher.gpus=[]", "hydra.sweeper.sampler=random",
            f"hydra.sweeper.n_trials={opts.trials}", f"hydra.sweeper.pruner={pruner}",
            f"hydra.sweeper.warmup_epochs={opts.warmup}", f"trainer.max_epochs={opts.epochs}",
            *([f"data.subset={opts.subset}"] if opts.subset else []), "logger=none", "callbacks.progress_bar=none",
            f"paths.output_dir={out}", f"paths.data_dir={data_dir}"]
    started = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"search with pruner={pruner} failed:\n{result.stderr[-3000:]}")
    (sweep,) = (out / "multirun").iterdir()
    records = [json.loads(p.read_text()) for p in sweep.glob("trial_*/metrics.json")]
    study = open_study(SearchSettings(), sweep)
    best = study.best_trial
    winner = json.loads((sweep / f"trial_{best.number}" / "metrics.json").read_text())
    return Arm(sum(r["epochs"] for r in records), wall, best.number, study.best_value, winner["test"]["test/acc"],
               sum(r["status"] == "pruned" for r in records))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pruner", default="median")
    parser.add_argument("--warmup", type=int, default=2, help="epochs before a trial can be pruned")
    parser.add_argument("--subset", type=int, default=None, help="training samples (MNIST-1D; default all)")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        full = search(Path(tmp) / "full", data_dir, opts, "none")
        pruned = search(Path(tmp) / "pruned", data_dir, opts, opts.pruner)
    print(f"cores: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}; {opts.trials} random "
          f"configs x {opts.epochs} epochs, {opts.workers} workers, MNIST-1D MLP")
    for name, arm in (("no pruner", full), (f"pruner={opts.pruner}", pruned)):
        print(f"{name:<18} epochs {arm.epochs:4d} ({arm.pruned} trials pruned)  wall {arm.wall_s:7.1f} s  "
              f"best val acc {arm.best_val:.4f} (trial {arm.best_trial})  winner's test acc {arm.winner_test:.4f}")
    gain = 100 * (pruned.best_val - full.best_val)
    print(f"pruned/full: epochs {pruned.epochs / full.epochs:.0%} (target <= 60%), "
          f"wall {pruned.wall_s / full.wall_s:.0%} (target <= 70%), best val acc {gain:+.1f} points "
          f"({'same winner' if pruned.best_trial == full.best_trial else 'another winner'}; target: within 1 point)")


if __name__ == "__main__":
    main()
