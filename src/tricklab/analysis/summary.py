"""What a sweep's report shows, as numbers: per-config statistics over seeds, before tables and plots are drawn.

``report.py`` fills these and renders them; ``plots.py`` draws from them (neither imports the other's caller).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tricklab.sweep import Config, Sweep

RANK_BY = "test/acc"


def statuses_text(counts: Counter) -> str:
    """"3 completed, 1 diverged": how many runs ended each way, most common first."""
    return ", ".join(f"{n} {status}" for status, n in counts.most_common())


@dataclass
class Stat:
    """Mean and sample std of a metric over ``n`` runs (std NaN for a single run)."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: np.ndarray) -> Stat | None:
        if len(values) == 0:
            return None
        return cls(float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else math.nan, len(values))

    def __str__(self) -> str:
        return f"{self.mean:.4f}" if math.isnan(self.std) else f"{self.mean:.4f} ± {self.std:.4f}"


@dataclass
class ConfigSummary:
    """One config's line of the table, and its ensemble's line when it has one."""

    label: str
    config: Config
    stats: dict[str, Stat | None]
    statuses: Counter
    epochs: float
    wall_time_s: float
    ensemble: dict[str, float] | None = None
    rank_by: str = RANK_BY  # the metric (one of ``stats``) the table is sorted by, best first

    @property
    def rank(self) -> float:
        stat = self.stats.get(self.rank_by)
        return stat.mean if stat else -math.inf


@dataclass
class Report:
    """Everything the report shows, before formatting."""

    sweep: Sweep
    metrics: tuple[str, ...]
    configs: list[ConfigSummary]
    effects: dict[str, list[tuple[str, Stat | None, Counter]]] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)
    findings: list[Any] = field(default_factory=list)  # a study's judged claims (study.ClaimFinding)
    study: Any = None  # the study the runs were launched as (study.Study), or None
