"""A sweep on disk: its runs (every folder below it holding a metrics.json), grouped into configs.

A config = the runs whose overrides are equal once ``seed=`` is left out; the swept factors are the override keys
that take more than one value across the sweep. Reads plain files only (JSON, CSV, NPZ); torch is imported only
for an ensemble's calibration error.
"""

from __future__ import annotations

import csv
import math
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from tricklab.config import PLUMBING
from tricklab.errors import DataError
from tricklab.results import HISTORY_FILE, LAYERS_FILE, METRICS_FILE, PREDICTIONS_FILE, read_metrics


def _number(value: Any) -> float:
    """A metric value as a float; NaN for missing or non-numeric (metrics.json stores NaN/Inf as strings)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _read_csv(path: Path) -> list[dict[str, Any]]:
    """The rows of a run's CSV file (history.csv, layers.csv); DataError for one that is not UTF-8 text or has a
    row cut short (a full disk, a kill mid-write), which would otherwise be read as missing values."""
    if not path.is_file():
        return []
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path} cannot be read ({type(err).__name__}: {err}); it must be the UTF-8 CSV train.py "
                        f"writes. Move it aside (mv {path} {path}.unreadable) to report the run without it.") from None
    for line, row in enumerate(rows, start=2):
        if None in row.values() or None in row:
            raise DataError(f"{path} is cut short or malformed at line {line} (it has a different number of fields "
                            f"than its header); it must be the CSV train.py writes. Move it aside (mv {path} "
                            f"{path}.unreadable) to report the run without it.")
    return [{k: (_number(v) if k not in ("name", "type", "activation") else v) for k, v in row.items()}
            for row in rows]


@dataclass
class Run:
    """One run folder and its metrics.json."""

    path: Path
    metrics: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.metrics.get("status", "unknown"))

    @property
    def factors(self) -> dict[str, str]:
        """The run's overrides as key -> value, without the seed and the plumbing."""
        pairs = (o.lstrip("+").split("=", 1) for o in self.metrics.get("overrides", []) if "=" in o)
        return {k: v for k, v in pairs if k != "seed" and not k.startswith(PLUMBING)}

    def metric(self, key: str) -> float:
        """``test/*`` from the test results, ``best/<metric>`` the best epoch's (``best/val/acc``), anything else
        from the last epoch; NaN when absent."""
        if key.startswith("best/"):
            return _number((self.metrics.get("best") or {}).get(key.removeprefix("best/")))
        section = "test" if key.startswith("test") else "final"
        return _number((self.metrics.get(section) or {}).get(key))

    @cached_property
    def history(self) -> list[dict[str, float]]:
        return _read_csv(self.path / HISTORY_FILE)

    @cached_property
    def layers(self) -> list[dict[str, Any]]:
        return _read_csv(self.path / LAYERS_FILE)

    def predictions(self) -> tuple[np.ndarray, np.ndarray] | None:
        path = self.path / PREDICTIONS_FILE
        if not path.is_file():
            return None
        with np.load(path) as data:
            return data["probs"], data["labels"]


@dataclass
class Config:
    """The runs of one setting of the swept factors (typically its seeds)."""

    factors: dict[str, str]
    runs: list[Run] = field(default_factory=list)

    @property
    def completed(self) -> list[Run]:
        return [r for r in self.runs if r.status == "completed"]

    def label(self, swept: list[str]) -> str:
        shown = [f"{k}={self.factors.get(k, '-')}" for k in swept] or [f"{k}={v}" for k, v in self.factors.items()]
        return ", ".join(shown) or "defaults"

    def values(self, key: str) -> np.ndarray:
        """``key`` over the completed runs (finite values only)."""
        values = np.array([r.metric(key) for r in self.completed], dtype=float)
        return values[np.isfinite(values)]

    def ensemble(self) -> dict[str, float] | None:
        """Accuracy, NLL and expected calibration error of p̄ = mean of the completed runs' test probabilities
        (None under two members)."""
        loaded = [p for p in (r.predictions() for r in self.completed) if p is not None]
        if len(loaded) < 2 or any(not np.array_equal(labels, loaded[0][1]) for _, labels in loaded):
            return None
        probs, labels = np.mean([p for p, _ in loaded], axis=0), loaded[0][1]
        picked = np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)
        return {"members": len(loaded), "test/acc": float((probs.argmax(1) == labels).mean()),
                "test/loss": float(-np.log(picked).mean()), "test/ece": _ece(probs, labels)}


def _ece(probs: np.ndarray, labels: np.ndarray) -> float:
    import torch

    from tricklab.calibration import expected_calibration_error

    return expected_calibration_error(torch.from_numpy(probs).float(), torch.from_numpy(labels).long())


@dataclass
class Sweep:
    """Every run below ``root``, grouped into configs (in the order they were found)."""

    root: Path
    runs: list[Run]
    # Run folders whose metrics.json cannot be read (cut mid-write by a full disk, edited by hand): folder -> why.
    unreadable: dict[Path, str] = field(default_factory=dict)

    @cached_property
    def swept(self) -> list[str]:
        """Override keys that take more than one value across the runs."""
        keys: dict[str, set[str]] = {}
        for run in self.runs:
            for k, v in run.factors.items():
                keys.setdefault(k, set()).add(v)
        return [k for k, values in keys.items() if len(values) > 1 or any(k not in r.factors for r in self.runs)]

    @cached_property
    def configs(self) -> list[Config]:
        groups: dict[tuple, Config] = {}
        for run in self.runs:
            key = tuple(sorted(run.factors.items()))
            groups.setdefault(key, Config(run.factors)).runs.append(run)
        return list(groups.values())


def load_sweep(root: Path) -> Sweep:
    """The runs below ``root`` (or ``root`` itself when it is one run); DataError when there are none."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; give a run folder or a sweep folder (one holding run folders).")
    paths = sorted(p.parent for p in root.rglob(METRICS_FILE))
    runs, unreadable = [], {}
    for path in paths:
        try:
            runs.append(Run(path, read_metrics(path)))
        except (OSError, ValueError) as err:  # a bad file is one run lost, not the whole report
            unreadable[path] = f"{type(err).__name__}: {err}"
            print(f"tricklab: warning: {path / METRICS_FILE} cannot be read ({unreadable[path]}); that run is "
                  f"left out and listed under the runs that did not complete.", file=sys.stderr)
    if not runs:
        found = f" readable (unreadable: {', '.join(str(p / METRICS_FILE) for p in unreadable)})" if unreadable else ""
        raise DataError(f"{root} holds no{found} {METRICS_FILE}; give a run folder (train.py writes its metrics.json "
                        f"there) or a sweep folder whose job folders hold one.")
    return Sweep(root, sorted(runs, key=lambda r: (_job_number(r.path), str(r.path))), unreadable)


def _job_number(path: Path) -> int:
    """Hydra names sweep job folders 0, 1, 2...; sort them as numbers."""
    return int(path.name) if path.name.isdigit() else -1
