"""The studies in ``conf/experiment/``: each experiment YAML with a ``study:`` block. ``tricklab study list`` shows
them; ``tricklab study <name> [overrides]`` runs one on the local launcher and reports its Findings.

A study runs into ``outputs/studies/<name>/<8 hex of its overrides>/``: the same command finds the same folder
and resumes it (completed jobs are skipped). It is also a plain multirun: ``python train.py -m
experiment=<name>`` (on any launcher).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from tricklab.config import CONF_DIR, PROJECT_ROOT, STUDY_PAGES
from tricklab.errors import ConfigError
from tricklab.results import STUDY_RUN_FILE, write_json_atomic

EXPERIMENTS = CONF_DIR / "experiment"
MIN_SEEDS = 2  # a t-interval needs two values at least


@dataclass(frozen=True)
class StudyFile:
    """An experiment YAML with a study block, as written (not composed)."""

    name: str
    raw: dict[str, Any]

    @property
    def block(self) -> dict[str, Any]:
        return self.raw.get("study") or {}

    @property
    def arms(self) -> dict[str, list[str]]:
        return ((self.raw.get("hydra") or {}).get("sweeper") or {}).get("arms") or {}

    @property
    def params(self) -> dict[str, str]:
        return ((self.raw.get("hydra") or {}).get("sweeper") or {}).get("params") or {}

    def seeds(self, overrides: list[str] = ()) -> int:
        """How many seeds the study runs, with ``overrides`` (``seed=0,1`` or ``hydra.sweeper.params.seed=...``)."""
        values = str(self.params.get("seed", "0"))
        for override in overrides:
            key, _, value = override.partition("=")
            if key.lstrip("+") in ("seed", "hydra.sweeper.params.seed"):
                values = value
        return len(_values(values))

    def jobs(self) -> int:
        """Jobs of the study as written: its arms (one if none) × the grid of its params."""
        grid = math.prod(len(_values(str(v))) for v in self.params.values())
        return max(1, len(self.arms)) * grid


def _values(sweep: str) -> list[str]:
    """The values of a comma-separated sweep (``0,1,2``; ``range(3)`` counts as its length)."""
    found = re.fullmatch(r"range\((\d+)\)", sweep.strip())
    return [str(i) for i in range(int(found.group(1)))] if found else [v for v in sweep.split(",") if v.strip()]


def study_files() -> dict[str, StudyFile]:
    """Every experiment YAML that has a study block, by name."""
    found = {}
    for path in sorted(EXPERIMENTS.glob("*.yaml")):
        raw = OmegaConf.to_container(OmegaConf.load(path))
        if isinstance(raw, dict) and raw.get("study"):
            found[path.stem] = StudyFile(path.stem, raw)
    return found


def find(name: str) -> StudyFile:
    """The study ``name``; a ConfigError listing the known ones when there is none."""
    known = study_files()
    if name not in known:
        raise ConfigError(f"study {name!r} is unknown; the studies are: {', '.join(known) or 'none'} "
                          f"(tricklab study list shows them with their questions).")
    return known[name]


def folder(name: str, overrides: list[str], output_dir: Path) -> Path:
    """``<output_dir>/studies/<name>/<8 hex of the overrides>``: the same command, the same folder."""
    digest = hashlib.sha1("\n".join(overrides).encode()).hexdigest()[:8]
    return output_dir / "studies" / name / digest


def last_wall_time(name: str) -> str:
    """The wall time the study's generated page records (docs/studies/<name>.md), or "-" before it has one."""
    page = STUDY_PAGES / f"{name}.md"
    found = re.search(r"^- Wall time: (.+)$", page.read_text(), re.M) if page.is_file() else None
    return found.group(1) if found else "-"


def list_studies() -> None:
    """Print every study: its question, claims with sources, job count and last wall time."""
    for study in study_files().values():
        block = study.block
        print(f"{study.name}: {block.get('question', '')}")
        print(f"  {study.jobs()} jobs ({len(study.arms)} arms x {study.seeds()} seeds); wall time when its page "
              f"was generated: {last_wall_time(study.name)}")
        for claim in block.get("claims") or []:
            print(f"  - {claim.get('question', '')} [{claim.get('source', '')}]")


def workers() -> int:
    """One worker per GPU, else one per CPU core this process may use."""
    import torch

    return torch.cuda.device_count() or len(os.sched_getaffinity(0))


def run_study(name: str, overrides: list[str], output_dir: Path | None = None) -> Path:
    """Run (or resume) study ``name`` with ``overrides`` on the local launcher, then write its report."""
    study = find(name)
    if study.seeds(overrides) < MIN_SEEDS:
        print(f"tricklab: warning: {study.seeds(overrides)} seed(s) give no confidence interval: every Findings "
              f"verdict of study {name} will be inconclusive. Run at least {MIN_SEEDS} seeds (seed=0,1,2).",
              file=sys.stderr)
    out = folder(name, overrides, (output_dir or PROJECT_ROOT / "outputs").resolve())
    command = [sys.executable, str(PROJECT_ROOT / "train.py"), "-m", f"experiment={name}", "hydra/launcher=local",
               f"hydra.launcher.workers={workers()}", f"hydra.sweep.dir={out}", *overrides]
    from tricklab.study_page import commit

    started, trained_at = time.perf_counter(), commit()
    done = subprocess.run(command, cwd=PROJECT_ROOT)
    if out.is_dir():
        write_json_atomic(out / STUDY_RUN_FILE, {"study": name, "overrides": overrides,
                                                 "command": _shown_command(name, overrides), "commit": trained_at,
                                                 "wall_time_s": round(time.perf_counter() - started, 1),
                                                 "exit_code": done.returncode})
    if done.returncode == 2 or not out.is_dir():  # refused before anything ran: its message is printed
        raise SystemExit(done.returncode or 2)
    from tricklab.report import make_report

    make_report(out)
    return out


def _shown_command(name: str, overrides: list[str]) -> str:
    return " ".join(["tricklab", "study", name, *overrides])
