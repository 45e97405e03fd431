"""A study's Findings as markdown: per claim, each arm's mean with its 95% interval (and divergences), each arm
against the baseline (Δ, its interval, p, Holm's p) and the verdict in one line."""

from __future__ import annotations

import math
from pathlib import Path

from omegaconf import OmegaConf

from tricklab.findings import ArmSummary, Comparison
from tricklab.study import ClaimFinding, Study
from tricklab.sweep import Sweep

# What Hydra saves in every job folder: the job's config, and Hydra's own (with the sweeper's arms).
SAVED_CONFIG, SAVED_HYDRA = Path(".hydra") / "config.yaml", Path(".hydra") / "hydra.yaml"


def study_of(sweep: Sweep) -> Study | None:
    """The study the sweep's runs were launched with (the ``study:`` block of their saved config and the
    sweeper's arms), or None."""
    for run in sweep.runs:
        saved, hydra = run.path / SAVED_CONFIG, run.path / SAVED_HYDRA
        if saved.is_file() and hydra.is_file():
            block = OmegaConf.to_container(OmegaConf.load(saved)).get("study")
            if block:
                arms = OmegaConf.select(OmegaConf.load(hydra), "hydra.sweeper.arms")
                name = (run.metrics.get("choices") or {}).get("experiment", sweep.root.name)
                return Study.from_config(name, block, OmegaConf.to_container(arms) if arms else None)
    return None


def _num(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.4g}"


def _interval(low: float, high: float) -> str:
    return "—" if math.isnan(low) else f"[{low:.4g}, {high:.4g}]"


def arm_cell(summary: ArmSummary) -> str:
    """``mean [low, high]`` over the finite runs, with divergences; ``n/n diverged`` when nothing is left."""
    if summary.all_diverged:
        return f"{summary.diverged}/{summary.diverged} diverged"
    text = f"{_num(summary.mean)} {_interval(*summary.interval)}"
    return text + (f", {summary.diverged} of {summary.diverged + summary.n} diverged" if summary.diverged else "")


def verdict_line(comparison: Comparison, verdict: str, metric: str) -> str:
    """One line: the verdict, then the numbers it rests on."""
    arm, base = comparison.arm, comparison.baseline
    if comparison.by_divergence:
        numbers = (f"diverged {arm.diverged}/{arm.diverged + arm.n} vs {base.diverged}/{base.diverged + base.n} "
                   f"(Fisher p = {_num(comparison.p_value)})")
    else:
        numbers = (f"Δ {metric} = {comparison.difference:+.4g} {_interval(*comparison.interval)}, "
                   f"p = {_num(comparison.p_value)}")
    return f"- **{verdict}**: {arm.arm} vs {base.arm}: {numbers}, Holm p = {_num(comparison.p_holm)}"


def findings_markdown(findings: list[ClaimFinding]) -> str:
    """The Findings section of a study's report."""
    parts = ["## Findings",
             "Mean over the seeds of each arm with its 95% Student-t interval; each arm against the baseline by "
             "Welch's t-test (difference, its 95% interval and p), p Holm-corrected across the study's "
             "comparisons; a verdict needs Holm p < 0.05. Diverged runs are counted, never averaged. The seeds "
             "vary the initialisation and the batch order; the data split is fixed."]
    for i, finding in enumerate(findings, 1):
        claim = finding.claim
        rows = [f"| {name}{' (baseline)' if name == claim.baseline else ''} | {arm_cell(s)} |"
                for name, s in finding.summaries.items()]
        parts += [f"### Claim {i}: {claim.question}",
                  f"Source: {claim.source or '—'}. Metric: `{claim.metric}` ({claim.direction} is better); the "
                  f"claim: the arms are {claim.expect} than `{claim.baseline}`.",
                  "\n".join(["| arm | mean [95% CI] |", "|---|---|", *rows]),
                  "\n".join(verdict_line(c, v, claim.metric) for c, v in zip(finding.comparisons, finding.verdicts,
                                                                              strict=True))]
    return "\n\n".join(parts)
