"""A study's pilot round trained in fused packs of seeds (what ``tricklab study`` does) against every job alone.

For each study named, the same jobs (every arm × the pilot's seeds) run twice on the local launcher with the
workers ``tricklab study`` uses: ``hydra.launcher.fuse=<the study's cap>`` and ``hydra.launcher.fuse=1``,
alternating which goes first; the wall time of each sweep (start-up to exit) and the ratio alone/fused are
printed, with the pilot's job count. Nothing is reported on the studies' claims.

    python benchmarks/study_fusing.py dropout overfitting [--seeds 4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sweep_seconds(name: str, seeds: int, fuse: int, out: Path) -> float:
    """Wall seconds of the pilot sweep of study ``name`` with packs of at most ``fuse`` jobs (the local launcher's
    default workers: one per GPU, else one per core)."""
    command = [sys.executable, str(ROOT / "train.py"), "-m", f"experiment={name}", "hydra/launcher=local",
               f"hydra.launcher.fuse={fuse}",
               f"seed={','.join(map(str, range(seeds)))}", f"hydra.sweep.dir={out}", "logger=none",
               "callbacks.progress_bar=none"]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("studies", nargs="+")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per arm (default: the study's pilot)")
    args = parser.parse_args()
    from tricklab.analysis.studies import find

    print("| study | jobs | fused (s) | alone (s) | alone / fused |\n| --- | --- | --- | --- | --- |")
    for i, name in enumerate(args.studies):
        study = find(name)
        plan = study.plan()
        seeds = args.seeds or plan.pilot
        times = {}
        with tempfile.TemporaryDirectory() as tmp:
            for fuse in ((plan.cap, 1) if i % 2 == 0 else (1, plan.cap)):
                times[fuse] = sweep_seconds(name, seeds, fuse, Path(tmp) / f"fuse{fuse}")
        print(f"| {name} | {study.jobs() * seeds} | {times[plan.cap]:.0f} | {times[1]:.0f} | "
              f"{times[1] / times[plan.cap]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
