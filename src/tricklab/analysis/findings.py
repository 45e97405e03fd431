"""The statistics of a study's Findings: what the seeds say about a claim, with its uncertainty.

For each arm, the mean over seeds with a 95% Student-t interval, x̄ ± t₀.₉₇₅,ₙ₋₁·s/√n. For each arm against the
baseline, Welch's difference of means Δ = x̄_arm − x̄_base with its interval Δ ± t₀.₉₇₅,ν·√(s₁²/n₁ + s₂²/n₂)
(ν by Welch–Satterthwaite) and two-sided p-value; p-values are Holm-corrected across the comparisons of a study
(Holm 1979: the k-th smallest of m is multiplied by m−k+1, then made monotone). These fixed-n statistics on
every finished seed stand beside a study's verdicts, which come from its seed plan (tricklab.analysis.sequential). Runs
that diverged are counted, never averaged: when every run of a side diverged
there is no mean to compare, and the comparison is Fisher's exact test on the counts of diverged runs (the side
that diverges more often is the worse one).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# scipy.stats, slow to import, is imported where it is used: every sweep's checks import this module (through
# tricklab.analysis.study) and need none of it.

ALPHA = 0.05
CONFIDENCE = 0.95


@dataclass(frozen=True)
class ArmSummary:
    """An arm's finite values (one per seed that did not diverge), their mean and 95% t-interval."""

    arm: str
    values: tuple[float, ...]
    diverged: int = 0

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% Student-t interval of the mean (NaN with fewer than two values)."""
        if self.n < 2:
            return math.nan, math.nan
        from scipy import stats

        half = stats.t.ppf(0.5 + CONFIDENCE / 2, self.n - 1) * np.std(self.values, ddof=1) / math.sqrt(self.n)
        return self.mean - half, self.mean + half

    @property
    def all_diverged(self) -> bool:
        return self.n == 0 and self.diverged > 0

    @property
    def divergence_rate(self) -> float:
        return self.diverged / (self.diverged + self.n) if self.diverged + self.n else math.nan


@dataclass(frozen=True)
class Comparison:
    """Welch's comparison of an arm with the baseline: Δ = mean(arm) − mean(baseline)."""

    arm: ArmSummary
    baseline: ArmSummary
    difference: float
    interval: tuple[float, float]
    p_value: float
    p_holm: float = math.nan
    by_divergence: bool = False  # a side diverged in every run: Fisher's exact test on the diverged counts

    @classmethod
    def of(cls, arm: ArmSummary, baseline: ArmSummary) -> Comparison:
        """Welch's test of the means, or Fisher's of the divergence counts when a side has no finite value; NaN
        statistics when a side has fewer than two values and did not diverge throughout."""
        from scipy import stats

        if arm.all_diverged or baseline.all_diverged:
            table = [[arm.diverged, arm.n], [baseline.diverged, baseline.n]]
            p = float(stats.fisher_exact(table).pvalue)
            return cls(arm, baseline, math.nan, (math.nan, math.nan), p, by_divergence=True)
        if arm.n < 2 or baseline.n < 2:
            return cls(arm, baseline, arm.mean - baseline.mean, (math.nan, math.nan), math.nan)
        with warnings.catch_warnings():  # seeds that agree to the last digit: scipy warns, the p-value says it
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.ttest_ind(arm.values, baseline.values, equal_var=False)
        low, high = result.confidence_interval(CONFIDENCE)
        return cls(arm, baseline, arm.mean - baseline.mean, (float(low), float(high)), float(result.pvalue))

    def arm_is_better(self, higher_is_better: bool) -> bool:
        if self.by_divergence:
            return self.arm.divergence_rate < self.baseline.divergence_rate
        return (self.difference > 0) == higher_is_better


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order; NaN stays NaN and is not counted in m."""
    finite = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for k, (p, i) in enumerate(sorted(finite)):
        running = max(running, min(1.0, (len(finite) - k) * p))
        adjusted[i] = running
    return adjusted

