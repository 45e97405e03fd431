"""The group-sequential design (tricklab.analysis.sequential): its spending, one look's exact level, and, by simulating
thousands of studies, its error rates: under no effect a study decides a claim wrongly (supported or
contradicted) at most 5% of the time; under a true effect of the size the design is declared for, it decides
≥ 80% of the time by the cap."""

import math

import numpy as np
import pytest

from tricklab.analysis.sequential import (
    CONTRADICTED,
    NEGLIGIBLE,
    SUPPORTED,
    UNDECIDED,
    Design,
    looks,
    probability_better,
    spending,
    verdicts,
    walk,
)

STUDY_ALPHA, COMPARISONS = 0.05, 4  # a study of four comparisons, each spending α/4
DESIGN = Design(looks(4, 4, 24), STUDY_ALPHA / COMPARISONS)


def test_the_looks_spend_the_comparisons_share_as_the_spending_function_says():
    spent = np.cumsum(DESIGN.nominal_levels)
    assert spent[-1] == pytest.approx(DESIGN.alpha)
    fractions = np.array(DESIGN.units) / DESIGN.units[-1]
    assert spent == pytest.approx(spending(fractions, DESIGN.alpha))


def test_one_look_misses_the_true_difference_at_its_level():
    """Normal differences, look k's interval alone: it misses Δ with probability p_k (Student's t is exact)."""
    rng = np.random.default_rng(1)
    k = len(DESIGN.units) - 1
    d = rng.standard_normal((200_000, DESIGN.units[k])) + 0.3
    _, low, high = DESIGN.interval(k, d)
    missed = ((low > 0.3) | (high < 0.3)).mean()
    assert missed == pytest.approx(DESIGN.nominal_levels[k], rel=0.1)


def test_the_first_look_is_strict_and_the_last_spends_most():
    levels = DESIGN.nominal_levels
    assert levels[0] < 1e-6 and np.all(np.diff(levels) > 0)
    assert 0.4 * DESIGN.alpha < levels[-1] < DESIGN.alpha


def _simulate_studies(effect: float, delta: float, studies: int, seed: int) -> np.ndarray:
    """Verdicts (studies × comparisons) of simulated studies whose paired differences are N(effect, 1)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(COMPARISONS):
        differences = rng.standard_normal((studies, DESIGN.units[-1])) + effect
        out.append(walk(DESIGN, lambda n, d=differences: d[:, :n], delta, +1, rows=studies).verdict)
    return np.stack(out, axis=1)


@pytest.mark.parametrize("delta", [0.0, 0.5])
def test_under_no_effect_a_study_decides_wrongly_at_most_five_percent_of_the_time(delta):
    found = _simulate_studies(0.0, delta, studies=3000, seed=7)
    wrong = np.isin(found, [SUPPORTED, CONTRADICTED]).any(axis=1)  # familywise: any claim of the study
    assert wrong.mean() <= STUDY_ALPHA
    assert wrong.mean() > 0.005  # the test spends its error, it is not vacuous


def test_under_the_declared_effect_a_claim_is_decided_by_the_cap_four_times_in_five():
    effect = DESIGN.detectable_effect(power=0.8)
    assert 0.5 < effect < 1.2  # 24 paired seeds at α/4 detect about three quarters of a standard deviation
    found = _simulate_studies(effect, delta=effect, studies=3000, seed=8)
    assert (found == SUPPORTED).mean() >= 0.8
    assert (found == CONTRADICTED).mean() < 0.001


def test_no_effect_with_a_wide_margin_ends_negligible_early():
    found = walk(DESIGN, lambda n: np.random.default_rng(3).standard_normal((500, 24))[:, :n] * 0.1, 1.0, +1,
                 rows=500)
    assert (found.verdict == NEGLIGIBLE).mean() > 0.95
    assert np.median(DESIGN.units[0] + 0 * found.look) == 4 and (found.look <= 1).mean() > 0.9


def test_walk_stops_where_the_units_run_out_and_keeps_the_last_look():
    d = np.array([0.1, -0.2, 0.3, 0.0, 0.2, 0.1, -0.1, 0.0, 0.05])
    found = walk(DESIGN, lambda n: d[:n][None] if n <= len(d) else None, 0.01, +1)
    assert found.verdict[0] == UNDECIDED and DESIGN.units[found.look[0]] == 8
    assert found.estimate[0] == pytest.approx(d[:8].mean())


def test_verdicts_read_the_interval_the_way_the_claim_points():
    low, high = np.array([0.1, -0.5, -0.05, -0.5]), np.array([0.5, -0.1, 0.05, 0.5])
    assert list(verdicts(low, high, 0.1, +1)) == [SUPPORTED, CONTRADICTED, NEGLIGIBLE, UNDECIDED]
    assert list(verdicts(low, high, 0.1, -1)) == [CONTRADICTED, SUPPORTED, NEGLIGIBLE, UNDECIDED]


def test_probability_better_counts_paired_wins_with_a_bootstrap_interval():
    p, low, high = probability_better([1, 2, -1, 0], better_sign=+1)
    assert p == pytest.approx(2.5 / 4) and low <= p <= high
    assert probability_better([1, 2, 3], better_sign=-1)[0] == 0.0
    assert math.isnan(probability_better([], +1)[0])
