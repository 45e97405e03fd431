"""Seeds until decided: a group-sequential design for the comparisons of a study.

A comparison is looked at when n_1 < n_2 < … < n_K = N units (seeds, or blocks of seeds for ensembles) are in:
the pilot, then a batch more at each look, up to the study's cap. It spends its share α' = α/m of the study's α
(m comparisons: Bonferroni, so the familywise error stays ≤ α) over the looks with the O'Brien–Fleming-type
function of Lan & DeMets (1983), α'(t) = 2 − 2Φ(z_{1−α'/2}/√t) at information fraction t = n_k/N: look k tests
at the two-sided level p_k = α'(t_k) − α'(t_{k−1}) (almost nothing early, most of α' at the cap). Each look's
repeated confidence interval (Jennison & Turnbull 1989) is Δ̂_k ± q_k·s_k/√n_k with q_k Student's t quantile
1 − p_k/2 on n_k − 1 degrees of freedom, so it misses the true Δ with probability p_k exactly for normal
differences, and some look's interval misses with probability ≤ Σ p_k = α' whatever the looks' dependence (a
union bound: the spread is estimated afresh at each look, which is what breaks the z-scale boundaries' joint
calibration at a handful of seeds — simulated, they erred 5.8% at a nominal 5%). Deciding from the intervals is
therefore wrong with probability ≤ α' per comparison:

- *supported* / *contradicted*: the interval excludes 0, on the side the claim expects / on the other;
- *negligible*: the interval lies inside ±δ, the claim's smallest effect of interest (equivalence; stricter than
  TOST at α', whose interval has level 1 − 2α');
- otherwise another batch of seeds; at the cap, *undecided at the cap*.

``tests/test_sequential.py`` checks the spending against a Monte Carlo and the error rates by simulation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

SUPPORTED, CONTRADICTED, NEGLIGIBLE, UNDECIDED = "supported", "contradicted", "negligible", "undecided"
DECIDED = (SUPPORTED, CONTRADICTED, NEGLIGIBLE)


def spending(t: float | np.ndarray, alpha: float) -> float | np.ndarray:
    """α(t) = 2 − 2Φ(z_{1−α/2}/√t): the error spent by information fraction t (0 at t = 0, α at t = 1)."""
    from scipy import stats

    t = np.asarray(t, dtype=float)
    return 2.0 * stats.norm.sf(stats.norm.isf(alpha / 2) / np.sqrt(t))


def looks(pilot: int, batch: int, cap: int) -> tuple[int, ...]:
    """Seed counts at which a study looks: the pilot, then every ``batch`` more, the cap last."""
    counts = list(range(pilot, cap, max(1, batch))) + [cap]
    return tuple(sorted(set(n for n in counts if n <= cap)))


@dataclass(frozen=True)
class Design:
    """The looks of one comparison (``units`` at each look, at least 2) and its share ``alpha`` of the error."""

    units: tuple[int, ...]
    alpha: float

    @cached_property
    def nominal_levels(self) -> np.ndarray:
        """p_k = α(t_k) − α(t_{k−1}): the two-sided level look k tests at, t_k = n_k / N."""
        cap = self.units[-1]
        spent = spending(np.array([n / cap for n in self.units]), self.alpha)
        return np.diff(np.concatenate([[0.0], spent]))

    def multiplier(self, k: int, n: int) -> float:
        """q: the repeated interval's half-width in standard errors at look ``k`` with ``n`` finite pairs."""
        from scipy import stats

        return float(stats.t.isf(self.nominal_levels[k] / 2, max(1, n - 1)))

    def interval(self, k: int, differences: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Look ``k``'s estimate and repeated interval (low, high), row-wise over ``differences`` (rows × n)."""
        d = np.atleast_2d(np.asarray(differences, dtype=float))
        n = d.shape[1]
        mean = d.mean(axis=1)
        half = self.multiplier(k, n) * d.std(axis=1, ddof=1) / math.sqrt(n)
        return mean, mean - half, mean + half

    def detectable_effect(self, power: float = 0.8) -> float:
        """The true difference, in standard deviations of one unit's difference, that the cap's look alone
        decides with probability ``power`` (noncentral t): the effect this design is sized for. Earlier looks
        only add to it."""
        from scipy import optimize, stats

        n, k = self.units[-1], len(self.units) - 1
        q = self.multiplier(k, n)

        def shortfall(effect: float) -> float:
            return float(stats.nct.sf(q, n - 1, effect * math.sqrt(n))) - power

        return float(optimize.brentq(shortfall, 1e-6, 50.0))


@dataclass(frozen=True)
class Walk:
    """Where a sequence of looks ended, per row: the verdict, the look it was reached at (index into the
    design's units; −1 before any look), and that look's estimate and repeated interval."""

    verdict: np.ndarray
    look: np.ndarray
    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray


def walk(design: Design, at_look: Callable[[int], np.ndarray | None], delta: float, expected_sign: int,
         rows: int = 1) -> Walk:
    """Look after look, as long as ``at_look(n)`` has the differences of the first n units (rows × finite pairs;
    None when they are not all in yet): each row stops at its first decided look, else runs to the last look in."""
    verdict = np.full(rows, UNDECIDED, dtype=object)
    look = np.full(rows, -1)
    estimate, low, high = (np.full(rows, math.nan) for _ in range(3))
    for k, n in enumerate(design.units):
        differences = at_look(n)
        if differences is None:
            break
        open_rows = ~np.isin(verdict, DECIDED)
        if not open_rows.any():
            break
        d = np.atleast_2d(differences)[open_rows]
        if d.shape[1] < 2:
            continue
        mean, lo, hi = design.interval(k, d)
        verdict[open_rows] = verdicts(lo, hi, delta, expected_sign)
        look[open_rows], estimate[open_rows], low[open_rows], high[open_rows] = k, mean, lo, hi
    return Walk(verdict, look, estimate, low, high)


def verdicts(low: np.ndarray, high: np.ndarray, delta: float, expected_sign: int) -> np.ndarray:
    """From repeated intervals [low, high]: supported when they exclude 0 on the ``expected_sign`` side,
    contradicted on the other, negligible inside (−δ, δ), else undecided."""
    low, high = np.asarray(low), np.asarray(high)
    out = np.full(low.shape, UNDECIDED, dtype=object)
    above, below = low > 0, high < 0
    out[above] = SUPPORTED if expected_sign > 0 else CONTRADICTED
    out[below] = CONTRADICTED if expected_sign > 0 else SUPPORTED
    out[(low > -delta) & (high < delta) & ~above & ~below] = NEGLIGIBLE
    return out


def probability_better(differences: Sequence[float], better_sign: int, resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float, float]:
    """P(the arm beats the baseline on a seed): the share of paired units whose difference points the better
    way (ties count half), with a percentile bootstrap 95% interval over the units."""
    d = np.sign(np.asarray(differences, dtype=float)) * better_sign
    wins = (d > 0) + 0.5 * (d == 0)
    if len(wins) == 0:
        return math.nan, math.nan, math.nan
    draws = np.random.default_rng(seed).integers(0, len(wins), (resamples, len(wins)))
    boot = wins[draws].mean(axis=1)
    return float(wins.mean()), float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))


def fisher_decides(k: int, design: Design, diverged: tuple[int, int], finished: tuple[int, int]) -> bool:
    """Whether Fisher's exact test on (arm, baseline) diverged counts out of their finished runs rejects
    "equally often" at look ``k``'s nominal level (used when every run of a side diverged)."""
    from scipy import stats

    table = [[diverged[0], finished[0] - diverged[0]], [diverged[1], finished[1] - diverged[1]]]
    return float(stats.fisher_exact(table).pvalue) < design.nominal_levels[k]
