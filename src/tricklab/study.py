"""A study: named arms (override sets) run over seeds, and claims that compare arms with a baseline arm.

``tricklab/conf/experiment/<name>.yaml`` defines the arms for the grid sweeper and the claims in a ``study:`` block::

    hydra:
      sweeper:
        params: {seed: 0,1,2}
        arms:                                # name -> the overrides that make it (crossed with the seeds)
          plain: [norm=none]
          batch_norm: [norm=batch]
    study:
      question: Does batch norm make training faster?
      regime: The source's setting (steps, data, schedule) and how this design follows it.
      seeds: {pilot: 4, batch: 4, cap: 24}   # seeds until decided (tricklab.sequential); these are the defaults
      changes:                               # design changes since the last page, each with its reason
        - {what: "max_epochs 10 -> 40", why: "the source trains to convergence"}
      claims:
        - question: Batch norm reaches a higher validation accuracy after 2 epochs.
          source: Ioffe & Szegedy 2015, "Batch Normalization"
          metric: val/acc@2                  # see METRIC_FORMS
          direction: higher                  # higher or lower is better
          delta: 0.01                        # smallest effect of interest, in the metric's units
          baseline: plain
          arms: [batch_norm]
          expect: better                     # the lesson says the arms beat the baseline (or: worse)

A run belongs to the arm whose overrides it carries (all of them; ``arm`` in its metrics.json when the sweeper
wrote one). Each arm is compared with the baseline seed by seed (the same seed gives the same initial draws and
batch order in both), at the looks of the study's seed plan (tricklab.sequential). Reads plain files only, like
``sweep.py``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from tricklab.errors import ConfigError
from tricklab.findings import ALPHA, ArmSummary, Comparison, holm
from tricklab.sequential import (
    CONTRADICTED,
    DECIDED,
    SUPPORTED,
    Design,
    fisher_decides,
    looks,
    probability_better,
    walk,
)
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
    r"layer_ratio/\w+": "last hidden layer's over first layer's value of a layers.csv column at the first diagnosed"
                        " step (layer_ratio/act_std)",
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
    delta: float = 0.0  # smallest effect of interest: an interval inside ±delta is "negligible"

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"

    @property
    def expected_sign(self) -> int:
        """The sign Δ = arm − baseline has when the claim holds."""
        return (1 if self.higher_is_better else -1) * (1 if self.expect == "better" else -1)


@dataclass(frozen=True)
class SeedPlan:
    """Seeds until decided: ``pilot`` seeds for every arm, then ``batch`` more for the arms of undecided claims,
    up to ``cap``."""

    pilot: int = 4
    batch: int = 4
    cap: int = 24

    @property
    def looks(self) -> tuple[int, ...]:
        return looks(self.pilot, self.batch, self.cap)

    @classmethod
    def from_config(cls, study: str, raw: Mapping[str, Any] | None) -> tuple[SeedPlan, list[str]]:
        """The plan of a ``seeds:`` block and what is wrong with it (2 ≤ pilot ≤ cap, batch ≥ 1, integers)."""
        raw = dict(raw or {})
        unknown = sorted(set(raw) - {"pilot", "batch", "cap"})
        values = {key: raw.get(key, getattr(cls, key)) for key in ("pilot", "batch", "cap")}
        problems = [f"study {study}: study.seeds.{key} is not a setting; the settings are pilot, batch, cap."
                    for key in unknown]
        for key, value in values.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < (2 if key != "batch" else 1):
                problems.append(f"study {study}: study.seeds.{key}={value!r} is not allowed; it must be an integer "
                                f"≥ {2 if key != 'batch' else 1}.")
        if not problems and values["pilot"] > values["cap"]:
            problems.append(f"study {study}: study.seeds.pilot={values['pilot']} is above study.seeds.cap="
                            f"{values['cap']}; the pilot must fit under the cap.")
        return (cls(**values) if not problems else cls()), problems


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
    seeds: SeedPlan = field(default_factory=SeedPlan)
    regime: str = ""
    changes: tuple[dict[str, str], ...] = ()

    @classmethod
    def from_config(cls, name: str, block: Mapping[str, Any], arms: Mapping[str, Any] | None) -> Study:
        """The study of a ``study:`` block over the sweeper's ``arms``; a ConfigError listing every problem when
        they do not hold together."""
        arms = {arm: tuple(overrides) for arm, overrides in (arms or {}).items()}
        problems = [] if arms else [f"study {name}: hydra.sweeper.arms is empty; a study compares named arms."]
        groups = {group: tuple(members) for group, members in (block.get("groups") or {}).items()}
        select_by = str(block.get("select_by", "best/val/acc"))
        problems += _group_problems(name, groups, select_by, arms)
        seeds, found = SeedPlan.from_config(name, block.get("seeds"))
        problems += found
        claims = []
        for i, raw in enumerate(block.get("claims") or []):
            delta = raw.get("delta")
            if not isinstance(delta, (int, float)) or isinstance(delta, bool) or not delta >= 0:
                problems.append(f"study {name}: study.claims[{i}].delta={delta!r} is not allowed; every claim "
                                f"declares its smallest effect of interest, a number ≥ 0 in the metric's units "
                                f"(0.01 = one point of accuracy).")
                delta = 0.0
            claim = Claim(question=raw.get("question", ""), source=raw.get("source", ""), metric=raw.get("metric", ""),
                          direction=raw.get("direction", ""), baseline=raw.get("baseline", ""),
                          arms=tuple(raw.get("arms") or ()), expect=raw.get("expect", "better"), delta=float(delta))
            problems += _claim_problems(name, i, claim, {**arms, **groups})
            claims.append(claim)
        if not claims:
            problems.append(f"study {name}: study.claims is empty; a study states at least one claim.")
        if problems:
            raise ConfigError("\n".join(problems))
        changes = tuple({"what": str(c.get("what", "")), "why": str(c.get("why", ""))}
                        for c in block.get("changes") or [])
        return cls(name, str(block.get("question", "")), arms, tuple(claims), groups, select_by, seeds,
                   str(block.get("regime", "")).strip(), changes)

    @property
    def comparisons(self) -> int:
        """m, the comparisons the study's error is shared among."""
        return sum(len(claim.arms) for claim in self.claims)

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
    """Last hidden layer's over first layer's value at the first diagnosed step. The output layer has no
    activation (its row's "activation" is "none": its activations are the logits), so it is left out."""
    rows = run.layers
    if not rows:
        return math.nan
    first_step = min(row["step"] for row in rows)
    at_step = sorted((row for row in rows if row["step"] == first_step), key=lambda row: row["layer"])
    hidden = [row for row in at_step if row.get("activation") not in (None, "none")] or at_step
    return _number(hidden[-1].get(column)) / _number(at_step[0].get(column))


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass(frozen=True)
class Decision:
    """Where the seed plan's looks left one comparison: the verdict, the units (seeds, or ensembles of K seeds)
    it rests on, the paired difference Δ = arm − baseline with that look's repeated interval, and P(the arm beats
    the baseline on a unit) with its bootstrap interval. ``needs``: the seeds its next look wants, 0 when none."""

    verdict: str
    units: int
    unit: str
    estimate: float
    interval: tuple[float, float]
    p_better: tuple[float, float, float]
    needs: int = 0
    by_divergence: bool = False

    @property
    def decided(self) -> bool:
        return self.verdict in DECIDED


@dataclass
class ClaimFinding:
    """A claim, its arms' summaries, and each arm's comparison with the baseline: Welch's test on every finished
    seed (with Holm's correction) beside the sequential decision, whose verdict is the claim's answer."""

    claim: Claim
    summaries: dict[str, ArmSummary]
    comparisons: list[Comparison] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    @property
    def verdicts(self) -> list[str]:
        return [decision.verdict for decision in self.decisions]


def assess(study: Study, sweep: Sweep) -> list[ClaimFinding]:
    """Every claim judged on the sweep's runs: each comparison by the study's seed plan at α/m (m comparisons),
    and Welch's p-values Holm-corrected across the study beside it."""
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
        decisions = [decide(study, claim, arm, by_arm) for arm in claim.arms]
        findings.append(ClaimFinding(claim, summaries, comparisons, decisions))
    adjusted = iter(holm([c.p_value for f in findings for c in f.comparisons]))
    for finding in findings:
        finding.comparisons = [Comparison(**{**c.__dict__, "p_holm": next(adjusted)}) for c in finding.comparisons]
    return findings


def decide(study: Study, claim: Claim, entry: str, by_arm: Mapping[str, list[Run]]) -> Decision:
    """The comparison of ``entry`` with the claim's baseline, walked through the seed plan's looks: seed s of the
    arm against seed s of the baseline (an ensemble of seeds jK..jK+K−1 against the mean of those seeds alone)."""
    arm, metric = split_arm(entry, claim.metric)
    base, base_metric = split_arm(claim.baseline, claim.metric)
    k = int(metric.split("/")[1]) if metric.startswith("ensemble/") else 1
    units = tuple(sorted({n // k for n in study.seeds.looks if n // k >= 2}))
    unit = "seeds" if k == 1 else f"ensembles of {k} seeds"
    if not units:
        return Decision(f"undecided: the cap of {study.seeds.cap} seeds makes fewer than 2 {unit}", 0, unit,
                        math.nan, (math.nan, math.nan), (math.nan,) * 3)
    design = Design(units, ALPHA / study.comparisons)
    seeded = {name: {run.metrics.get("seed"): run for run in runs if run.status in ("completed", "diverged")}
              for name, runs in by_arm.items()}

    @cache  # asked again for the same look: by the scan for the last look in, the walk and the answer
    def sides(n_units: int) -> tuple[list[Run], list[Run]] | None:
        """The arm's and the baseline's runs of the first n_units·k seeds (a group: its best member on them)."""
        seeds = range(n_units * k)
        picked = []
        for name in (arm, base):
            member = name
            if name in study.groups:
                runs = {m: [seeded[m][s] for s in seeds if s in seeded[m]] for m in study.groups[name]}
                member = _best_member(study, study.groups[name], runs)
            if any(s not in seeded[member] for s in seeds):
                return None
            picked.append([seeded[member][s] for s in seeds])
        return picked[0], picked[1]

    @cache  # an ensemble unit reads its members' prediction files: once per look, not once per ask
    def differences(n_units: int) -> np.ndarray | None:
        found = sides(n_units)
        if found is None:
            return None
        arm_runs, base_runs = found
        blocks = [slice(j * k, (j + 1) * k) for j in range(n_units)]
        mine = np.array([_unit_value(arm_runs[b], metric) for b in blocks])
        theirs = np.array([np.mean([_run_value(r, base_metric) for r in base_runs[b]]) for b in blocks])
        d = mine - theirs
        return d[np.isfinite(d)][None]

    last_in = max((n for n in units if sides(n) is not None), default=0)
    needs = next((n * k for n in units if n > last_in), 0)
    if last_in and _one_side_all_diverged(sides(last_in)):
        return _divergence_decision(claim, design, units, sides, unit, needs)
    found = walk(design, differences, claim.delta, claim.expected_sign)
    verdict, look = found.verdict[0], int(found.look[0])
    used = units[look] if look >= 0 else last_in
    d = differences(used) if used else None
    p_better = probability_better(d[0] if d is not None else [], 1 if claim.higher_is_better else -1)
    if verdict in DECIDED:
        needs = 0
    elif not used:
        verdict = f"undecided: the first look needs {units[0] * k} seeds"
    else:
        verdict = (f"undecided at the cap ({units[-1] * k} seeds)" if used == units[-1]
                   else f"undecided at {used * k} seeds")
    return Decision(verdict, used, unit, float(found.estimate[0]), (float(found.low[0]), float(found.high[0])),
                    p_better, needs)


def _one_side_all_diverged(found: tuple[list[Run], list[Run]] | None) -> bool:
    return found is not None and any(runs and all(r.status == "diverged" for r in runs) for runs in found)


def _divergence_decision(claim: Claim, design: Design, units: tuple[int, ...], sides, unit: str,
                         needs: int) -> Decision:
    """Every run of a side diverged: Fisher's exact test of the diverged counts at each look's level; the side
    that diverges more often is the worse one."""
    last = 0
    for k, n in enumerate(units):
        found = sides(n)
        if found is None:
            break
        counts = tuple(sum(r.status == "diverged" for r in runs) for runs in found)
        if fisher_decides(k, design, counts, (len(found[0]), len(found[1]))):
            holds = (counts[0] < counts[1]) == (claim.expect == "better")
            return Decision(SUPPORTED if holds else CONTRADICTED, n, unit, math.nan, (math.nan, math.nan),
                            (math.nan,) * 3, 0, by_divergence=True)
        last = n
    verdict = f"undecided at the cap ({units[-1]} seeds)" if last == units[-1] else f"undecided at {last} seeds"
    return Decision(verdict, last, unit, math.nan, (math.nan, math.nan), (math.nan,) * 3, needs, by_divergence=True)


def _run_value(run: Run, metric: str) -> float:
    return metric_value(run, metric) if run.status == "completed" else math.nan


def _unit_value(runs: list[Run], metric: str) -> float:
    """One unit's value: a seed's metric, or an ensemble metric of a block of seeds (NaN if one diverged)."""
    if not metric.startswith("ensemble/"):
        return _run_value(runs[0], metric)
    if any(run.status != "completed" for run in runs):
        return math.nan
    from tricklab.sweep import Config

    found = Config({}, runs).ensemble()
    return math.nan if found is None else float(found[metric.split("/", 2)[2]])


def near_chance(study: Study, sweep: Sweep) -> list[tuple[str, float, float]]:
    """(arm, its mean best validation accuracy, chance) for each arm whose runs never leave chance: their mean
    best val/acc stays below chance + 10% of the way from chance (1/classes) to 1. Only arms that a claim reads
    after training: a claim on layers.csv (layer_ratio/, layer_spread/) measures the net at initialisation."""
    trained = set()
    for claim in study.claims:
        for entry in (claim.baseline, *claim.arms):
            arm, metric = split_arm(entry, claim.metric)
            if not metric.startswith(("layer_ratio/", "layer_spread/")):
                trained.update(study.groups.get(arm, (arm,)))
    flagged = []
    for arm in (arm for arm in study.arms if arm in trained):
        runs = [run for run in sweep.runs if study.arm_of(run) == arm and run.status == "completed"]
        classes = [run.metrics.get("num_classes") for run in runs if isinstance(run.metrics.get("num_classes"), int)]
        best = [v for v in (metric_value(run, "best/val/acc") for run in runs) if math.isfinite(v)]
        if not best or not classes:
            continue
        chance, mean = 1.0 / classes[0], float(np.mean(best))
        if mean < chance + 0.1 * (1 - chance):
            flagged.append((arm, mean, chance))
    return flagged


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
