"""Findings statistics on made-up metrics, checked against formulas computed here and scipy.stats."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tricklab.analysis.findings import ArmSummary, Comparison, holm

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


def test_an_all_diverged_arm_is_never_averaged_and_judged_by_its_divergence_count():
    arm = ArmSummary("lr=10", (), diverged=3)
    assert arm.all_diverged and math.isnan(arm.mean) and arm.divergence_rate == 1.0
    comparison = Comparison.of(arm, ArmSummary("base", BASE))
    assert comparison.by_divergence and math.isnan(comparison.difference)
    assert comparison.p_value == pytest.approx(stats.fisher_exact([[3, 0], [0, 4]]).pvalue)
    six = Comparison.of(ArmSummary("lr=10", (), diverged=6), ArmSummary("base", (0.8,) * 6))
    assert six.p_value == pytest.approx(stats.fisher_exact([[6, 0], [0, 6]]).pvalue)  # 0.002
    assert not six.arm_is_better(higher_is_better=True)  # the side that diverges more often is the worse one
