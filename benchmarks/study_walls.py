"""The wall time of each study as ``tricklab study`` recorded it (study.json), round by round, and the suite's total.

Nothing is trained: this reads ``<folder>/<study>/<hash>/study.json`` (default ``outputs/studies``), the file each
study run writes with its rounds (seeds, arms, jobs finished, wall seconds, commit). A study resumed or rerun in
the same folder records each run's rounds; the wall and commit columns are study.json's own totals (the rounds that
trained), so a rerun that found everything done adds nothing.

    python benchmarks/study_walls.py [outputs/studies] [--target-min 20]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tricklab.results import STUDY_RUN_FILE


def rows(folder: Path) -> list[dict]:
    """One row per study.json under ``folder``: name, rounds, jobs, most seeds, wall seconds, commit(s)."""
    found = []
    for path in sorted(folder.glob(f"*/*/{STUDY_RUN_FILE}")):
        record = json.loads(path.read_text())
        rounds = record.get("rounds", [])
        found.append({
            "study": record.get("study", path.parent.parent.name),
            "rounds": len(rounds),
            "jobs": sum(r.get("finished_jobs", 0) for r in rounds),
            "seeds": max((r.get("seeds", 0) for r in rounds), default=0),
            "wall_s": record.get("wall_time_s", 0.0),
            "commit": record.get("commit", "?"),
        })
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=Path("outputs/studies"))
    parser.add_argument("--target-min", type=float, default=20.0, help="each study's target wall, minutes")
    args = parser.parse_args()
    found = rows(args.folder)
    if not found:
        raise SystemExit(f"no */*/{STUDY_RUN_FILE} under {args.folder}: run `tricklab study <name>` first")
    print("| study | rounds | jobs | seeds (most) | wall | ≤ target | commit |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in found:
        minutes = row["wall_s"] / 60
        print(f"| {row['study']} | {row['rounds']} | {row['jobs']} | {row['seeds']} | {minutes:.1f} min | "
              f"{'yes' if minutes <= args.target_min else 'no'} | {row['commit']} |")
    total = sum(row["wall_s"] for row in found)
    print(f"\n{len(found)} studies, {sum(r['jobs'] for r in found)} jobs, {total / 3600:.2f} h in all")


if __name__ == "__main__":
    main()
