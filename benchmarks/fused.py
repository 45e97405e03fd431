"""Training K seeds one after another in one process, against training them as one fused pack, in one run.

For each architecture (the default MLP, the MNIST-1D CNN, ResNet-20 with batch norm), the same K jobs (seeds
0..K-1, the same steps) are trained both ways with what ``python train.py`` builds (``tricklab.run.fit.run`` for
each job; ``tricklab.fuse.run.run_pack`` for the pack), alternating which way goes first over the repeats. Two
timings each: the training loop (history.csv's time_s at the last epoch, from the start of fit: training and
validation) and end to end (building data, models and trainers, fitting, testing, writing every job's files).
Prints samples/s (training samples seen by all K jobs per second of training loop) and the ratios pack/alone.

    python benchmarks/fused.py [--members 8] [--repeats 2] [--threads 0] [--accelerator cpu|gpu] [--only mlp]
    python benchmarks/fused.py --pack-sizes 1 8 32 --accelerator gpu --only mlp   # packs only, by size

Target on 2 CPU cores: the MLP's training loop >= 1.3x faster as a pack. With ``--pack-sizes`` only packs are
trained, one of each size (seeds 0..K-1), and each size's samples/s is set against the first size's: on a GPU,
where one small net leaves the device nearly idle, the target is >= 6x for a pack of 32 over a pack of 1.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import compose_config  # noqa: E402

from tricklab.fuse.run import run_pack  # noqa: E402
from tricklab.run.context import RunContext  # noqa: E402
from tricklab.run.fit import run  # noqa: E402

# Architecture -> overrides. Epochs and subsets keep each way to tens of seconds on 2 CPU cores.
ARCHITECTURES = {
    "mlp": ["trainer.max_epochs=10"],
    "cnn": ["architecture=cnn", "trainer.max_epochs=2", "data.subset=2000"],
    "resnet20-bn": ["architecture=resnet", "norm=batch", "trainer.max_epochs=1", "data.subset=1000"],
}
COMMON = ["logger=none", "callbacks.progress_bar=none", "callbacks.checkpoint.every_seconds=60"]


def job_list(tmp: Path, overrides: list[str], members: int, way: str, threads: int, accelerator: str) -> list:
    made = []
    for seed in range(members):
        job = [*COMMON, *overrides, f"seed={seed}", f"trainer.accelerator={accelerator}",
               *([f"threads={threads}"] if threads else [])]
        made.append((compose_config(job, tmp / "out", tmp / "data"), RunContext(tmp / way / f"seed{seed}", {}, job)))
    return made


def loop_seconds(record: dict) -> float:
    """Seconds of the training loop: history.csv's time_s at the last epoch."""
    with (Path(record["run_dir"]) / "history.csv").open() as f:
        return float(list(csv.DictReader(f))[-1]["time_s"])


def samples(records: list[dict]) -> int:
    """Training samples the jobs saw, all epochs together."""
    return sum(r["sizes"]["train"] * r["epochs"] for r in records)


def timed(way: str, tmp: Path, overrides: list[str], members: int, threads: int, accelerator: str):
    """(training-loop seconds, end-to-end seconds, samples) of the K jobs trained ``way``."""
    jobs = job_list(tmp, overrides, members, way, threads, accelerator)
    started = time.perf_counter()
    if way == "pack":
        records = run_pack(jobs)
        loop = loop_seconds(records[0])  # one loop trains them all
    else:
        records = [run(cfg, ctx) for cfg, ctx in jobs]
        loop = sum(loop_seconds(r) for r in records)
    total = time.perf_counter() - started
    assert all(r["status"] == "completed" for r in records), [r["status"] for r in records]
    return loop, total, samples(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: every core)")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--only", nargs="*", choices=list(ARCHITECTURES), default=list(ARCHITECTURES))
    parser.add_argument("--pack-sizes", type=int, nargs="*", help="time packs of these sizes only, each against "
                        "the first")
    opts = parser.parse_args()
    if opts.pack_sizes:
        return by_pack_size(opts)
    print(f"{opts.members} seeds, alone (one after another, one process) vs one pack; {opts.repeats} repeats, "
          f"threads={opts.threads or 'all'}, {opts.accelerator}")
    print(f"  {'architecture':12} {'way':6} {'loop samples/s':>15} {'loop s':>8} {'end-to-end s':>13}")
    for name in opts.only:
        figures: dict[str, list[tuple[float, float, int]]] = {"alone": [], "pack": []}
        with tempfile.TemporaryDirectory() as tmp:
            for repeat in range(opts.repeats):
                order = ("alone", "pack") if repeat % 2 == 0 else ("pack", "alone")
                for way in order:
                    figures[way].append(timed(way, Path(tmp) / f"r{repeat}", ARCHITECTURES[name], opts.members,
                                              opts.threads, opts.accelerator))
        medians = {}
        for way, rows in figures.items():
            loop, total = statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
            medians[way] = (loop, total)
            print(f"  {name:12} {way:6} {rows[0][2] / loop:15.0f} {loop:8.2f} {total:13.2f}")
        print(f"  {name:12} pack/alone: training loop {medians['alone'][0] / medians['pack'][0]:.2f}x, "
              f"end to end {medians['alone'][1] / medians['pack'][1]:.2f}x")


def by_pack_size(opts: argparse.Namespace) -> None:
    """Packs of each size in ``--pack-sizes``: median training-loop samples/s over the repeats, and its ratio to
    the first size's."""
    print(f"packs of {', '.join(map(str, opts.pack_sizes))} seeds; {opts.repeats} repeats, "
          f"threads={opts.threads or 'all'}, {opts.accelerator}")
    print(f"  {'architecture':12} {'pack':>5} {'loop samples/s':>15} {'loop s':>8} {'end-to-end s':>13} "
          f"{'vs first':>9}")
    for name in opts.only:
        first = None
        with tempfile.TemporaryDirectory() as tmp:
            for size in opts.pack_sizes:
                rows = [timed("pack", Path(tmp) / f"k{size}-r{repeat}", ARCHITECTURES[name], size, opts.threads,
                              opts.accelerator) for repeat in range(opts.repeats)]
                loop, total = statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
                speed = rows[0][2] / loop
                first = first or speed
                print(f"  {name:12} {size:5d} {speed:15.0f} {loop:8.2f} {total:13.2f} {speed / first:8.2f}x")


if __name__ == "__main__":
    main()
