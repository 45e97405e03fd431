"""Findings statistics on made-up metrics, checked against formulas computed here and scipy.stats."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tricklab.findings import ArmSummary, Comparison, holm, verdict

BASE = (0.80, 0.82, 0.81, 0.79)
ARM = (0.85, 0.88, 0.84, 0.86, 0.87)


def test_the_arm_interval_is_students_t():
    arm = ArmSummary("a", ARM)
    x = np.array(ARM)
    half = stats.t.ppf(0.975, df=4) * x.std(ddof=1) / math.sqrt(5)
    assert arm.mean == pytest.approx(x.mean())
    assert arm.interval == pytest.approx((x.mean() - half, x.mean() + half))
    assert all(math.isnan(v) for v in ArmSummary("one", (0.5,)).interval)


def test_welch_difference_interval_and_p_value_match_the_formulas():
    comparison = Comparison.of(ArmSummary("a", ARM), ArmSummary("base", BASE))
    a, b = np.array(ARM), np.array(BASE)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch–Satterthwaite
    diff, se = a.mean() - b.mean(), math.sqrt(va + vb)
    half = stats.t.ppf(0.975, df) * se
    assert comparison.difference == pytest.approx(diff)
    assert comparison.interval == pytest.approx((diff - half, diff + half))
    assert comparison.p_value == pytest.approx(2 * stats.t.sf(abs(diff / se), df))
    assert comparison.p_value == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)


def test_holm_matches_the_step_down_by_hand():
    p = [0.01, 0.04, 0.03, 0.20, math.nan]
    # sorted 0.01, 0.03, 0.04, 0.20 -> x4, x3, x2, x1 = 0.04, 0.09, 0.08 -> monotone 0.09, 0.20
    assert holm(p)[:4] == pytest.approx([0.04, 0.09, 0.09, 0.20])
    assert math.isnan(holm(p)[4])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])


def judged(arm_values, base_values, expect="better", higher=True, diverged=(0, 0)):
    comparison = Comparison.of(ArmSummary("a", tuple(arm_values), diverged[0]),
                               ArmSummary("base", tuple(base_values), diverged[1]))
    comparison = Comparison(**{**comparison.__dict__, "p_holm": holm([comparison.p_value])[0]})
    return verdict(comparison, expect, higher)


def test_a_verdict_flips_from_inconclusive_to_supported_as_the_seeds_spread_shrinks():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(3)
    verdicts = [judged(0.85 + spread * noise, 0.84 + spread * rng.permutation(noise)) for spread in (0.05, 0.0005)]
    assert verdicts == ["inconclusive at 3 seeds", "supported"]


def test_contradicted_when_the_difference_points_the_other_way_and_lower_is_better():
    assert judged(ARM, BASE, expect="worse") == "contradicted"
    assert judged(ARM, BASE, expect="better", higher=False) == "contradicted"  # e.g. a loss: higher is worse
    assert judged(BASE, ARM, expect="better", higher=False) == "supported"


def test_an_all_diverged_arm_is_never_averaged_and_judged_by_its_divergence_count():
    arm = ArmSummary("lr=10", (), diverged=3)
    assert arm.all_diverged and math.isnan(arm.mean) and arm.divergence_rate == 1.0
    comparison = Comparison.of(arm, ArmSummary("base", BASE))
    assert comparison.by_divergence and math.isnan(comparison.difference)
    assert comparison.p_value == pytest.approx(stats.fisher_exact([[3, 0], [0, 4]]).pvalue)
    assert judged((), BASE[:3], expect="worse", diverged=(3, 0)) == "inconclusive at 3 seeds"  # 3/3 vs 0/3: p = 0.1
    assert judged((), [0.8] * 6, expect="worse", diverged=(6, 0)) == "supported"  # 6/6 vs 0/6: p = 0.002
    assert judged((), [0.8] * 6, expect="better", diverged=(6, 0)) == "contradicted"
