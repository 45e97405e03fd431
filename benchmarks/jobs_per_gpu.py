"""A local sweep with each GPU shared by K workers (``hydra.launcher.jobs_per_gpu=K``) against one worker per GPU:
the same jobs both ways, each sweep's wall time, and for every job the device its metrics.json records, its worker
(pid) and how many jobs ran on its GPU at once (from the jobs' start and end times).

    python benchmarks/jobs_per_gpu.py [--jobs 4] [--share 2] [--gpus auto] [--epochs 10]

Small nets are launch-bound, so K processes on one GPU should add up: the figure is the wall time of one worker
per GPU over that of K. Without a GPU, ``--gpus 0`` hands the launcher a GPU id this machine lacks (its workers
then train on the CPU): the plan and the records can be checked here, the speed only on a GPU machine
(benchmarks/gpu_check.sh).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sweep(share: int, jobs: int, epochs: int, gpus: str, out: Path, data_dir: Path) -> tuple[float, list[dict]]:
    """Run the sweep with ``jobs_per_gpu=share``; its wall time and its jobs' metrics.json, each with its manifest
    row under ``manifest``. Fails loudly unless every job completed."""
    args = [sys.executable, str(ROOT / "train.py"), "-m", "hydra/launcher=local",
            f"hydra.launcher.jobs_per_gpu={share}", f"hydra.launcher.gpus={gpus}",
            f"seed={','.join(map(str, range(jobs)))}", f"trainer.max_epochs={epochs}", "logger=none",
            "callbacks.progress_bar=none", f"paths.output_dir={out}", f"paths.data_dir={data_dir}"]
    started = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"the sweep with jobs_per_gpu={share} failed:\n{result.stderr[-3000:]}")
    (manifest_file,) = out.glob("multirun/*/sweep.json")
    rows = json.loads(manifest_file.read_text())["jobs"]
    records = []
    for folder, row in rows.items():
        record = json.loads((manifest_file.parent / folder / "metrics.json").read_text())
        assert record["status"] == "completed", (folder, record["status"])
        records.append({**record, "manifest": row})
    return seconds, sorted(records, key=lambda r: r["seed"])


def at_once(records: list[dict]) -> dict[str, int]:
    """Per GPU (the manifest's device), the most jobs that ran on it at the same time."""
    spans = [(r["manifest"]["device"], datetime.fromisoformat(r["started_at"]), datetime.fromisoformat(r["ended_at"]))
             for r in records]
    most: dict[str, int] = {}
    for device, start, _ in spans:  # the count is highest at some job's start
        running = sum(d == device and s <= start < e for d, s, e in spans)
        most[device] = max(most.get(device, 0), running)
    return most


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--share", type=int, default=2, help="jobs_per_gpu of the shared sweep")
    parser.add_argument("--gpus", default="auto", help="hydra.launcher.gpus: auto, or ids such as 0 or [0,1]")
    parser.add_argument("--epochs", type=int, default=10)
    opts = parser.parse_args()
    gpus = opts.gpus if opts.gpus == "auto" or opts.gpus.startswith("[") else f"[{opts.gpus}]"
    walls = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        for share in (1, opts.share):
            seconds, records = sweep(share, opts.jobs, opts.epochs, gpus, Path(tmp) / f"share{share}", data_dir)
            walls[share] = seconds
            print(f"jobs_per_gpu={share}: {opts.jobs} jobs in {seconds:.1f} s; most jobs at once per GPU: "
                  f"{at_once(records)}")
            for r in records:
                device = r["device"]
                print(f"  seed {r['seed']}  worker pid {r['manifest']['pid']}  launcher slot {r['manifest']['device']}"
                      f"  trained on {device['torch']} ({device['name']}, CUDA_VISIBLE_DEVICES="
                      f"{device['cuda_visible_devices']})  {r['wall_time_s']:.1f} s")
    print(f"wall time jobs_per_gpu=1 / jobs_per_gpu={opts.share}: {walls[1] / walls[opts.share]:.2f}x")


if __name__ == "__main__":
    main()
