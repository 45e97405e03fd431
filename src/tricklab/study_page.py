"""A study's Findings as markdown: per claim, each arm's mean with its 95% interval (and divergences), each arm
against the baseline (Δ, its interval, p, Holm's p) and the verdict in one line; and the study's page in
docs/studies/ with the index of all of them."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from tricklab.findings import ArmSummary, Comparison
from tricklab.results import STUDY_RUN_FILE
from tricklab.study import Claim, ClaimFinding, Decision, Study, split_arm
from tricklab.summary import statuses_text
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
                saved_hydra = OmegaConf.load(hydra)
                arms = OmegaConf.select(saved_hydra, "hydra.sweeper.arms")
                name = OmegaConf.select(saved_hydra, "hydra.runtime.choices.experiment") or sweep.root.name
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


def effect_text(metric: str, estimate: float, interval: tuple[float, float]) -> str:
    """Δ with its interval: accuracies in points (×100), anything else to 3 significant digits."""
    if math.isnan(estimate):
        return "—"
    if metric.rsplit("/", 1)[-1].startswith("acc"):
        return f"{100 * estimate:+.1f} points [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"
    return f"{estimate:+.3g} [{interval[0]:.3g}, {interval[1]:.3g}]"


def answer_line(claim: Claim, arm: str, decision: Decision) -> str:
    """The claim in words and its answer: "He beats Glorot at depth 30 (glorot vs he) — supported: +31.5 points
    [27.0, 36.0], 8 seeds"."""
    _, metric = split_arm(arm, claim.metric)
    if decision.by_divergence:
        numbers = f"judged on divergence counts, {decision.units} {decision.unit}"
    else:
        numbers = f"{effect_text(metric, decision.estimate, decision.interval)}, {decision.units} {decision.unit}"
    return f"{claim.question} ({arm} vs {claim.baseline}) — **{decision.verdict}**: {numbers}"


def comparison_line(comparison: Comparison, decision: Decision, metric: str) -> str:
    """The sequential verdict with P(better), then Welch's fixed-n test on every finished seed."""
    arm, base = comparison.arm, comparison.baseline
    p, low, high = decision.p_better
    better = "—" if math.isnan(p) else f"{p:.2f} [{low:.2f}, {high:.2f}]"
    if comparison.by_divergence:
        welch = (f"diverged {arm.diverged}/{arm.diverged + arm.n} vs {base.diverged}/{base.diverged + base.n} "
                 f"(Fisher p = {_num(comparison.p_value)})")
    else:
        welch = (f"Welch on all finished seeds: Δ {metric} = {comparison.difference:+.4g} "
                 f"{_interval(*comparison.interval)}, p = {_num(comparison.p_value)}")
    return (f"- **{decision.verdict}**: {arm.arm} vs {base.arm}: paired Δ = "
            f"{effect_text(metric, decision.estimate, decision.interval)} over {decision.units} {decision.unit} "
            f"(repeated interval); P(arm better on a seed) = {better}. {welch}, Holm p = {_num(comparison.p_holm)}")


def answers_markdown(findings: list[ClaimFinding]) -> list[str]:
    """One answer line per comparison of the study, in claim order."""
    return [answer_line(f.claim, arm, d) for f in findings for arm, d in zip(f.claim.arms, f.decisions, strict=True)]


def findings_markdown(findings: list[ClaimFinding], study: Study | None = None) -> str:
    """The Findings section of a study's report: the answers first, then each claim's numbers."""
    parts = ["## Findings"]
    if study is not None:
        plan = study.seeds
        parts.append(
            f"Seeds until decided: {plan.pilot} seeds for every arm, then {plan.batch} more for the arms of "
            f"undecided comparisons, up to {plan.cap}. Each comparison pairs seed s of the arm with seed s of the "
            f"baseline (same initial draws and batch order) and spends 0.05/{study.comparisons} of the study's "
            f"error over its looks (Lan–DeMets O'Brien–Fleming spending; repeated 95%-family intervals): "
            f"*supported*/*contradicted* when the interval excludes 0, *negligible* when it lies inside ±δ, else "
            f"more seeds (tricklab/sequential.py). Diverged runs are counted, never averaged.")
    parts.append("\n".join(f"- {line}" for line in answers_markdown(findings)))
    for i, finding in enumerate(findings, 1):
        claim = finding.claim
        rows = [f"| {s.arm}{' (baseline)' if name == claim.baseline else ''} | {arm_cell(s)} |"
                for name, s in finding.summaries.items()]
        parts += [f"### Claim {i}: {claim.question}",
                  f"Source: {claim.source or '—'}. Metric: `{claim.metric}` ({claim.direction} is better); the "
                  f"claim: the arms are {claim.expect} than `{claim.baseline}`; smallest effect of interest "
                  f"δ = {claim.delta:g}.",
                  "\n".join(["| arm | mean [95% CI] over its finished seeds |", "|---|---|", *rows]),
                  "\n".join(comparison_line(c, d, claim.metric)
                            for c, d in zip(finding.comparisons, finding.decisions, strict=True))]
    return "\n\n".join(parts)


def write_page(report: Any, study: Study, pages: Path) -> Path:
    """``<pages>/<study>.md``: the study's question and its answers first, then the regime it ran in, what
    changed in its design since the previous page (with the verdicts before and after), the exact command,
    commit, config hash, machine, wall time, Findings and plots (copied to ``<pages>/<study>/``); its answers in
    ``<pages>/<study>.json``, and the index of every study page in ``<pages>/index.md``. Everything on the page
    comes from the runs, the study's YAML and this machine."""
    root = report.sweep.root
    figures = pages / study.name
    figures.mkdir(parents=True, exist_ok=True)
    for old in figures.glob("*.png"):
        old.unlink()
    for plot in report.plots:
        shutil.copy2(plot, figures / plot.name)
    launch = _launch(root)
    facts = {
        "Command": f"`{launch.get('command') or f'python train.py -m experiment={study.name}'}`",
        "Commit": f"trained at {launch.get('commit', '-')}, page written at {commit()}",
        "Config hash": _config_hash(root),
        "Machine": _machine(),
        "Wall time": f"{launch['wall_time_s']:.0f} s" if "wall_time_s" in launch else "-",
        "Runs": f"{len(report.sweep.runs)} ({statuses_text(Counter(run.status for run in report.sweep.runs))})",
    }
    sidecar = pages / f"{study.name}.json"
    answers = {_key(f.claim, arm): {"verdict": d.verdict, "line": answer_line(f.claim, arm, d)}
               for f in report.findings for arm, d in zip(f.claim.arms, f.decisions, strict=True)}
    design = _design_hash(study)
    previous = _previous(sidecar, design)
    text = "\n\n".join([
        f"# Study: {study.name}",
        f"**{study.question}**",
        "## Answers\n\n" + "\n".join(f"- {a['line']}" for a in answers.values()),
        *_warnings(study, report.sweep),
        "## Regime\n\n" + (study.regime + "\n\n" if study.regime else "") + regime_table(study, report.sweep),
        *_changes_section(study, previous, answers),
        "\n".join(f"- {key}: {value}" for key, value in facts.items()),
        "Generated by `tricklab study` (or `tricklab report <study folder> --page docs/studies`) from the runs of "
        "the command above; not edited by hand.",
        findings_markdown(report.findings, study),
        "## Plots", *(f"![{plot.stem}]({study.name}/{plot.name})" for plot in report.plots),
    ]) + "\n"
    page = pages / f"{study.name}.md"
    page.write_text(text)
    sidecar.write_text(json.dumps({"study": study.name, "question": study.question, "design": design,
                                   "answers": answers, "previous": previous, **facts}, indent=2) + "\n")
    write_index(pages)
    return page


def _key(claim: Claim, arm: str) -> str:
    return f"{arm} vs {claim.baseline} ({claim.metric})"


def _design_hash(study: Study) -> str:
    """sha1 (12 hex) of what makes the study's design: its arms, claims and seed plan (not its prose)."""
    design = {"arms": study.arms, "claims": [c.__dict__ for c in study.claims], "seeds": study.seeds.__dict__,
              "groups": study.groups, "select_by": study.select_by}
    return hashlib.sha1(json.dumps(design, sort_keys=True, default=list).encode()).hexdigest()[:12]


def _previous(sidecar: Path, design: str) -> dict[str, Any]:
    """The verdicts of the page before this design: the old page's own when its design differed, else what it
    kept as its previous (a page written again from the same design keeps its "before")."""
    if not sidecar.is_file():
        return {}
    old = json.loads(sidecar.read_text())
    if old.get("design") == design:
        previous = old.get("previous", {})
    elif "answers" in old:
        previous = {"commit": old.get("Commit", "-"), "verdicts": {k: a["verdict"] for k, a in old["answers"].items()}}
    else:  # a page of the fixed-seed design: "verdict: arm vs baseline (metric)"
        previous = {"commit": old.get("Commit", "-"),
                    "verdicts": dict(reversed(line.split(": ", 1)) for line in old.get("verdicts", []))}
    if "verdicts" in previous:  # the fixed-seed pages labelled a group with its best member: "adam (best: ...)"
        previous["verdicts"] = {re.sub(r" \(best: [^)]*\)", "", key): verdict
                                for key, verdict in previous["verdicts"].items()}
    return previous


def _changes_section(study: Study, previous: dict[str, Any], answers: dict[str, dict[str, str]]) -> list[str]:
    """"Design changes": what changed since the previous page and why (the study's YAML), then each
    comparison's verdict before and after."""
    if not study.changes and not previous:
        return []
    lines = [f"- {c['what']}: {c['why']}" for c in study.changes] or ["- (none listed in the study's YAML)"]
    parts = ["## Design changes", "\n".join(lines)]
    if previous:
        before = previous.get("verdicts", {})
        rows = [f"| {key} | {before.get(key, '— (not compared)')} | {a['verdict']} |" for key, a in answers.items()]
        rows += [f"| {key} | {verdict} | — (dropped) |" for key, verdict in before.items() if key not in answers]
        parts.append(f"Verdicts before ({previous.get('commit', '-')}) and now:\n\n"
                     + "\n".join(["| comparison | before | now |", "|---|---|---|", *rows]))
    return parts


def _warnings(study: Study, sweep: Sweep) -> list[str]:
    """Arms whose runs never leave chance, and arms that diverged in some seeds but not all (their comparisons
    keep only the seeds where both sides finished, which flatters the side that diverged)."""
    from tricklab.study import near_chance

    lines = [f"- **Arm {arm} never leaves chance** (its best validation accuracy, {acc:.3f} on average, stays "
             f"within 10% of the way from chance, {chance:.2f}, to 1): a comparison with it says little."
             for arm, acc, chance in near_chance(study, sweep)]
    for arm in study.arms:
        statuses = [run.status for run in sweep.runs if study.arm_of(run) == arm]
        diverged = statuses.count("diverged")
        if 0 < diverged < len(statuses):
            lines.append(f"- **Arm {arm} diverged in {diverged} of {len(statuses)} seeds**: its comparisons pair "
                         f"only the seeds where both sides finished, which leaves its failures out of its mean.")
    return ["\n".join(lines)] if lines else []


def regime_table(study: Study, sweep: Sweep) -> str:
    """Per arm, what its runs did: data and training samples, batch size, epochs, optimizer steps, optimizer and
    learning rate, schedule (from their metrics.json and saved config)."""
    rows = []
    for arm in study.arms:
        runs = [run for run in sweep.runs if study.arm_of(run) == arm]
        if not runs:
            continue
        path = runs[0].path / SAVED_CONFIG
        saved = OmegaConf.load(path) if path.is_file() else OmegaConf.create({})
        got = {key: OmegaConf.select(saved, key, default="-") for key in
               ("data.name", "data.batch_size", "optimizer.name", "optimizer.lr", "scheduler.name")}
        steps = [r.metrics.get("steps") for r in runs if isinstance(r.metrics.get("steps"), int)]
        epochs = [r.metrics.get("epochs") for r in runs if isinstance(r.metrics.get("epochs"), int)]
        samples = (runs[0].metrics.get("sizes") or {}).get("train", "-")
        rows.append(f"| {arm} | {got['data.name']} | {samples} | {got['data.batch_size']} | {_span(epochs)} | "
                    f"{_span(steps)} | {got['optimizer.name']} | {got['optimizer.lr']} | {got['scheduler.name']} | "
                    f"{len(runs)} |")
    return "\n".join(["| arm | data | training samples | batch | epochs | optimizer steps | optimizer | lr | "
                      "schedule | seeds run |", "|---|---|---|---|---|---|---|---|---|---|", *rows])


def _span(values: list[int]) -> str:
    if not values:
        return "-"
    return str(min(values)) if min(values) == max(values) else f"{min(values)}–{max(values)}"


def write_index(pages: Path) -> Path:
    """``index.md``: every study page with its question and one answer line per comparison."""
    parts = ["# Studies", "Each page is written by `tricklab study <name>` from real runs (list them with "
             "`tricklab study list`). Each line: the claim, the comparison (arm vs baseline), the answer, the "
             "paired difference with its interval, and the seeds it rests on."]
    for sidecar in sorted(pages.glob("*.json")):
        data = json.loads(sidecar.read_text())
        lines = [a["line"] for a in data["answers"].values()] if "answers" in data else data.get("verdicts", [])
        parts += [f"## [{data['study']}]({data['study']}.md): {data['question']}",
                  "\n".join(f"- {line}" for line in lines) + f"\n\n({data['Runs']} runs, "
                  f"{data['Wall time']} on {data['Machine']})"]
    index = pages / "index.md"
    index.write_text("\n\n".join(parts) + "\n")
    return index


def _launch(root: Path) -> dict[str, Any]:
    path = root / STUDY_RUN_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def commit() -> str:
    """The git commit (short) of the code that runs, marked when its working tree has uncommitted changes (the
    generated study pages aside: writing one study's page must not mark the next study's runs); "unknown" for
    a tricklab installed from a wheel (not a checkout's src/)."""
    from tricklab.config import STUDY_PAGES

    package = Path(__file__).resolve().parent
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=package, capture_output=True, text=True)
    checkout = Path(top.stdout.strip()) if top.returncode == 0 and top.stdout.strip() else None
    if checkout is None or (checkout / "src" / "tricklab").resolve() != package:  # site-packages in some repo
        return "unknown"
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", f":!{STUDY_PAGES}"],
                           cwd=checkout, capture_output=True, text=True).stdout.strip()
    return (done.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty else "")


def _config_hash(root: Path) -> str:
    """sha1 (12 hex) of the sweep's composed config, multirun.yaml."""
    path = root / "multirun.yaml"
    return hashlib.sha1(path.read_bytes()).hexdigest()[:12] if path.is_file() else "-"


def _machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores, {gpu}, torch {torch.__version__}, Python {platform.python_version()}"

