"""The wall time of each study as ``tricklab study`` recorded it (study.json), round by round, and the suite's total.

Nothing is trained: this reads ``<folder>/<study>/<hash>/study.json`` (default ``outputs/studies``), the file each
study run writes with its rounds (seeds, arms, jobs finished, wall seconds, commit). A study resumed or rerun in
the same folder records each run's rounds; the wall column sums them.

    python benchmarks/study_walls.py [outputs/studies] [--target-min 20]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(folder: Path) -> list[dict]:
    """One row per study.json under ``folder``: name, rounds, jobs, most seeds, wall seconds, commits."""
    found = []
    for path in sorted(folder.glob("*/*/study.json")):
        record = json.loads(path.read_text())
        rounds = record.get("rounds", [])
        found.append({
            "study": record.get("study", path.parent.parent.name),
            "rounds": len(rounds),
            "jobs": sum(r.get("finished_jobs", 0) for r in rounds),
            "seeds": max((r.get("seeds", 0) for r in rounds), default=0),
            "wall_s": sum(r.get("wall_time_s", 0.0) for r in rounds),
            "commits": sorted({r.get("commit", "?") for r in rounds}),
        })
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=Path("outputs/studies"))
    parser.add_argument("--target-min", type=float, default=20.0, help="each study's target wall, minutes")
    args = parser.parse_args()
    found = rows(args.folder)
    if not found:
        raise SystemExit(f"no */*/study.json under {args.folder}: run `tricklab study <name>` first")
    print("| study | rounds | jobs | seeds (most) | wall | ≤ target | commit |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in found:
        minutes = row["wall_s"] / 60
        print(f"| {row['study']} | {row['rounds']} | {row['jobs']} | {row['seeds']} | {minutes:.1f} min | "
              f"{'yes' if minutes <= args.target_min else 'no'} | {', '.join(row['commits'])} |")
    total = sum(row["wall_s"] for row in found)
    print(f"\n{len(found)} studies, {sum(r['jobs'] for r in found)} jobs, {total / 3600:.2f} h in all")


if __name__ == "__main__":
    main()
