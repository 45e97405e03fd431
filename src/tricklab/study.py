"""A study: named arms (override sets) run over seeds, and claims that compare arms with a baseline arm.

``conf/experiment/<name>.yaml`` defines the arms for the grid sweeper and the claims in a ``study:`` block::

    hydra:
      sweeper:
        params: {seed: 0,1,2}
        arms:                                # name -> the overrides that make it (crossed with the seeds)
          plain: [norm=none]
          batch_norm: [norm=batch]
    study:
      question: Does batch norm make training faster?
      claims:
        - question: Batch norm reaches a higher validation accuracy after 2 epochs.
          source: Ioffe & Szegedy 2015, "Batch Normalization"
          metric: val/acc@2                  # see METRIC_FORMS
          direction: higher                  # higher or lower is better
          baseline: plain
          arms: [batch_norm]
          expect: better                     # the lesson says the arms beat the baseline (or: worse)

A run belongs to the arm whose overrides it carries (all of them; ``arm`` in its metrics.json when the sweeper
wrote one). Reads plain files only, like ``sweep.py``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tricklab.errors import ConfigError
from tricklab.findings import ArmSummary, Comparison, holm, verdict
from tricklab.sweep import Run, Sweep

# The metric a claim reads, and how it is written.
METRIC_FORMS = {
    r"test(_\w+)?/\w+": "a test metric of metrics.json (test/acc, test/loss, test/ece, test_ema/acc, ...)",
    r"best/[\w/]+": "the best value over epochs of a history column (best/val/acc, best/val/loss)",
    r"final/[\w/]+": "the last epoch's value of a history column (final/train/loss)",
    r"[\w/]+@\d+": "a history column at a 1-based epoch (val/acc@2)",
    r"epochs_to/[\w/]+(>=|<=)[0-9.eE+-]+": "the first epoch whose value reaches a threshold (epochs_to/val/acc>=0.8;"
                                           " a run that never does counts as epochs + 1)",
    r"auc/[\w/]+": "the mean of a history column over the epochs (area under its curve per epoch: auc/train/loss)",
    r"max/[\w/]+": "the largest value of a history column (max/grad_norm)",
    r"layer_ratio/\w+": "last layer's over first layer's value of a layers.csv column at the first diagnosed step"
                        " (layer_ratio/act_std)",
    r"layer_spread/\w+": "|ln| of that ratio: 0 when the last layer keeps the first one's scale (layer_spread/act_std)",
    r"ensemble/\d+/test/(acc|loss|ece)": "the test metric of ensembles of K seeds (their averaged predicted"
                                         " probabilities), one value per disjoint block of K seeds"
                                         " (ensemble/4/test/acc)",
}
DIRECTIONS = ("higher", "lower")
EXPECTATIONS = ("better", "worse")


@dataclass(frozen=True)
class Claim:
    """One claim of the lesson: ``arms`` are ``expect`` (better or worse) than ``baseline`` on ``metric``."""

    question: str
    source: str
    metric: str
    direction: str
    baseline: str
    arms: tuple[str, ...]
    expect: str = "better"

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"


@dataclass(frozen=True)
class Study:
    """The arms and claims of a study, checked against each other."""

    name: str
    question: str
    arms: dict[str, tuple[str, ...]]
    claims: tuple[Claim, ...]
    # A group stands for the best of its arms (e.g. one optimizer at its best learning rate): the arm with the
    # best mean of ``select_by`` over its completed seeds (higher is better unless it ends in "loss").
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    select_by: str = "best/val/acc"

    @classmethod
    def from_config(cls, name: str, block: Mapping[str, Any], arms: Mapping[str, Any] | None) -> Study:
        """The study of a ``study:`` block over the sweeper's ``arms``; a ConfigError listing every problem when
        they do not hold together."""
        arms = {arm: tuple(overrides) for arm, overrides in (arms or {}).items()}
        problems = [] if arms else [f"study {name}: hydra.sweeper.arms is empty; a study compares named arms."]
        groups = {group: tuple(members) for group, members in (block.get("groups") or {}).items()}
        select_by = str(block.get("select_by", "best/val/acc"))
        problems += _group_problems(name, groups, select_by, arms)
        claims = []
        for i, raw in enumerate(block.get("claims") or []):
            claim = Claim(question=raw.get("question", ""), source=raw.get("source", ""), metric=raw.get("metric", ""),
                          direction=raw.get("direction", ""), baseline=raw.get("baseline", ""),
                          arms=tuple(raw.get("arms") or ()), expect=raw.get("expect", "better"))
            problems += _claim_problems(name, i, claim, {**arms, **groups})
            claims.append(claim)
        if not claims:
            problems.append(f"study {name}: study.claims is empty; a study states at least one claim.")
        if problems:
            raise ConfigError("\n".join(problems))
        return cls(name, str(block.get("question", "")), arms, tuple(claims), groups, select_by)

    def arm_of(self, run: Run) -> str | None:
        """The arm ``run`` belongs to: the one its metrics.json names, else the one whose overrides it carries."""
        if run.metrics.get("arm") in self.arms:
            return run.metrics["arm"]
        carried = {o.lstrip("+") for o in run.metrics.get("overrides", [])}
        matching = [arm for arm, overrides in self.arms.items() if {o.lstrip("+") for o in overrides} <= carried]
        return max(matching, key=lambda arm: len(self.arms[arm]), default=None)


def study_problems(config: Any, arms: Mapping[str, Any] | None) -> list[str]:
    """Why the ``study:`` block of a sweep's ``config`` does not hold together with the sweeper's ``arms`` (an arm
    or metric that does not exist...), checked before any job runs; [] without a study block."""
    from omegaconf import OmegaConf

    block = OmegaConf.select(config, "study")
    if not block:
        return []
    name = OmegaConf.select(config, "hydra.runtime.choices.experiment") or "study"
    try:
        Study.from_config(str(name), OmegaConf.to_container(block, resolve=True), arms)
    except ConfigError as err:
        return str(err).split("\n")
    return []


def _group_problems(study: str, groups: Mapping[str, tuple[str, ...]], select_by: str,
                    arms: Mapping[str, Any]) -> list[str]:
    problems = []
    for group, members in groups.items():
        if group in arms:
            problems.append(f"study {study}: study.groups.{group} has the name of an arm; give the group its own.")
        unknown = [m for m in members if m not in arms]
        if unknown or not members:
            problems.append(f"study {study}: study.groups.{group} lists {', '.join(unknown) or 'no arm'}, not arms "
                            f"of hydra.sweeper.arms; arms: {', '.join(arms) or 'none'}.")
    if groups and not any(re.fullmatch(form, select_by) for form in METRIC_FORMS):
        problems.append(f"study {study}: study.select_by={select_by!r} is not a metric tricklab reads.")
    return problems


def _claim_problems(study: str, i: int, claim: Claim, arms: Mapping[str, Any]) -> list[str]:
    where = f"study {study}: study.claims[{i}]"
    problems = []
    forms = "; ".join(f"{form} ({what})" for form, what in METRIC_FORMS.items())
    if not is_metric(claim.metric):
        problems.append(f"{where}.metric={claim.metric!r} is not a metric tricklab reads; the forms are: {forms}.")
    for entry in (claim.baseline, *claim.arms):
        arm, metric = split_arm(entry, claim.metric)
        if arm not in arms:
            problems.append(f"{where} names arm {arm!r}, which hydra.sweeper.arms does not define; arms: "
                            f"{', '.join(arms) or 'none'}.")
        if metric != claim.metric and not is_metric(metric):
            problems.append(f"{where} reads {entry!r}: {metric!r} is not a metric tricklab reads; the forms are: "
                            f"{forms}.")
    if not claim.arms:
        problems.append(f"{where}.arms is empty; list the arms compared with the baseline {claim.baseline!r}.")
    if claim.direction not in DIRECTIONS:
        problems.append(f"{where}.direction={claim.direction!r} is not allowed; it must be higher or lower.")
    if claim.expect not in EXPECTATIONS:
        problems.append(f"{where}.expect={claim.expect!r} is not allowed; it must be better or worse.")
    return problems


def is_metric(spec: str) -> bool:
    """Whether ``spec`` is one of METRIC_FORMS."""
    return any(re.fullmatch(form, spec) for form in METRIC_FORMS)


def split_arm(entry: str, metric: str) -> tuple[str, str]:
    """A claim's arm and the metric read of it: ``arm`` reads the claim's metric, ``arm:metric`` its own (the
    averaged weights of the same runs, ``ema:test_ema/acc``; ensembles of the arm's seeds)."""
    arm, _, own = entry.partition(":")
    return arm, own or metric


def metric_value(run: Run, spec: str) -> float:
    """The value of metric ``spec`` (one of METRIC_FORMS) for ``run``; NaN when the run did not record it."""
    history = run.history
    if spec.startswith("test"):
        return _number((run.metrics.get("test") or {}).get(spec))
    kind, _, rest = spec.partition("/")
    if kind == "layer_ratio":
        return _layer_ratio(run, rest)
    if kind == "layer_spread":
        ratio = _layer_ratio(run, rest)
        return abs(math.log(ratio)) if ratio > 0 else math.inf
    if kind == "epochs_to":
        column, op, threshold = re.fullmatch(r"([\w/]+)(>=|<=)(.+)", rest).groups()
        reached = [row["epoch"] for row in history if _reaches(row.get(column, math.nan), op, float(threshold))]
        return float(min(reached)) if reached else float(len(history) + 1)
    if "@" in spec:
        column, epoch = spec.rsplit("@", 1)
        return next((_number(row.get(column)) for row in history if row["epoch"] == int(epoch)), math.nan)
    values = [_number(row.get(rest)) for row in history]
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return math.nan
    pick = {"best": max if rest.endswith("acc") else min, "final": lambda v: v[-1], "max": max,
            "auc": lambda v: sum(v) / len(v)}[kind]
    return float(pick(values))


def _reaches(value: float, op: str, threshold: float) -> bool:
    return value >= threshold if op == ">=" else value <= threshold


def _layer_ratio(run: Run, column: str) -> float:
    rows = run.layers
    if not rows:
        return math.nan
    first_step = min(row["step"] for row in rows)
    at_step = sorted((row for row in rows if row["step"] == first_step), key=lambda row: row["layer"])
    return _number(at_step[-1].get(column)) / _number(at_step[0].get(column))


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass
class ClaimFinding:
    """A claim, its arms' summaries, and each arm's comparison with the baseline and verdict."""

    claim: Claim
    summaries: dict[str, ArmSummary]
    comparisons: list[Comparison] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)


def assess(study: Study, sweep: Sweep) -> list[ClaimFinding]:
    """Every claim judged on the sweep's runs; p-values Holm-corrected across all comparisons of the study."""
    by_arm: dict[str, list[Run]] = {arm: [] for arm in study.arms}
    for run in sweep.runs:
        arm = study.arm_of(run)
        if arm is not None:
            by_arm[arm].append(run)
    chosen = {group: _best_member(study, members, by_arm) for group, members in study.groups.items()}
    findings = []
    for claim in study.claims:
        summaries = {}
        for entry in (claim.baseline, *claim.arms):
            arm, metric = split_arm(entry, claim.metric)
            member = chosen.get(arm, arm)
            label = f"{entry} (best: {member})" if arm in chosen else entry
            summaries[entry] = _summary(label, by_arm[member], metric)
        comparisons = [Comparison.of(summaries[arm], summaries[claim.baseline]) for arm in claim.arms]
        findings.append(ClaimFinding(claim, summaries, comparisons))
    adjusted = iter(holm([c.p_value for f in findings for c in f.comparisons]))
    for finding in findings:
        finding.comparisons = [Comparison(**{**c.__dict__, "p_holm": next(adjusted)}) for c in finding.comparisons]
        finding.verdicts = [verdict(c, finding.claim.expect, finding.claim.higher_is_better)
                            for c in finding.comparisons]
    return findings


def _best_member(study: Study, members: tuple[str, ...], by_arm: Mapping[str, list[Run]]) -> str:
    """The member arm with the best mean ``study.select_by`` over its completed runs (chosen on validation, so
    that the claim's test metric is not used to pick it)."""
    sign = -1.0 if study.select_by.endswith("loss") else 1.0

    def score(arm: str) -> float:
        values = _summary(arm, by_arm[arm], study.select_by).values
        return sign * sum(values) / len(values) if values else -math.inf

    return max(members, key=score)


def _summary(arm: str, runs: list[Run], metric: str) -> ArmSummary:
    """The arm's finite values over its completed runs; diverged runs counted apart, never averaged."""
    if metric.startswith("ensemble/"):
        return ArmSummary(arm, tuple(_ensemble_values(runs, metric)), sum(run.status == "diverged" for run in runs))
    values = [metric_value(run, metric) for run in runs if run.status == "completed"]
    return ArmSummary(arm, tuple(v for v in values if math.isfinite(v)),
                      diverged=sum(run.status == "diverged" for run in runs))


def _ensemble_values(runs: list[Run], spec: str) -> list[float]:
    """``ensemble/K/<test metric>``: one value per disjoint block of K completed runs, in seed order (the
    ensembles share no member, so their values are independent)."""
    from tricklab.sweep import Config

    _, k, key = spec.split("/", 2)
    done = sorted((run for run in runs if run.status == "completed"), key=lambda run: run.metrics.get("seed", 0))
    blocks = [done[i:i + int(k)] for i in range(0, len(done) - int(k) + 1, int(k))]
    if int(k) == 1:
        return [metric_value(block[0], key) for block in blocks]
    found = [Config({}, block).ensemble() for block in blocks]
    return [ensemble[key] for ensemble in found if ensemble is not None]
