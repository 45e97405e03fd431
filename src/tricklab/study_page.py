"""A study's Findings as markdown: per claim, each arm's mean with its 95% interval (and divergences), each arm
against the baseline (Δ, its interval, p, Holm's p) and the verdict in one line; and the study's page in
docs/studies/ with the index of all of them."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from tricklab.findings import ArmSummary, Comparison
from tricklab.results import STUDY_RUN_FILE
from tricklab.study import ClaimFinding, Study
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
        rows = [f"| {s.arm}{' (baseline)' if name == claim.baseline else ''} | {arm_cell(s)} |"
                for name, s in finding.summaries.items()]
        parts += [f"### Claim {i}: {claim.question}",
                  f"Source: {claim.source or '—'}. Metric: `{claim.metric}` ({claim.direction} is better); the "
                  f"claim: the arms are {claim.expect} than `{claim.baseline}`.",
                  "\n".join(["| arm | mean [95% CI] |", "|---|---|", *rows]),
                  "\n".join(verdict_line(c, v, claim.metric) for c, v in zip(finding.comparisons, finding.verdicts,
                                                                              strict=True))]
    return "\n\n".join(parts)


def write_page(report: Any, study: Study, pages: Path) -> Path:
    """``<pages>/<study>.md`` with the study's question, exact command, commit, config hash, machine, wall time,
    Findings and plots (copied to ``<pages>/<study>/``), its verdicts in ``<pages>/<study>.json``, and the index
    of every study page in ``<pages>/index.md``. Everything on the page comes from the runs and this machine."""
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
    text = "\n\n".join([
        f"# Study: {study.name}",
        f"**{study.question}**",
        "\n".join(f"- {key}: {value}" for key, value in facts.items()),
        "Generated by `tricklab report <study folder> --page docs/studies` from the runs of the command above; "
        "not edited by hand.",
        findings_markdown(report.findings),
        "## Plots", *(f"![{plot.stem}]({study.name}/{plot.name})" for plot in report.plots),
    ]) + "\n"
    page = pages / f"{study.name}.md"
    page.write_text(text)
    verdicts = [f"{v}: {c.arm.arm} vs {c.baseline.arm} ({f.claim.metric})"
                for f in report.findings for c, v in zip(f.comparisons, f.verdicts, strict=True)]
    (pages / f"{study.name}.json").write_text(json.dumps(
        {"study": study.name, "question": study.question, "verdicts": verdicts, **facts}, indent=2) + "\n")
    write_index(pages)
    return page


def write_index(pages: Path) -> Path:
    """``index.md``: every study page with its question and one line per verdict."""
    parts = ["# Studies", "Each page is written by `tricklab report <study folder> --page docs/studies` from real "
             "runs; run a study with `tricklab study <name>`, list them with `tricklab study list`."]
    for sidecar in sorted(pages.glob("*.json")):
        data = json.loads(sidecar.read_text())
        parts += [f"## [{data['study']}]({data['study']}.md): {data['question']}",
                  "\n".join(f"- {line}" for line in data["verdicts"]) + f"\n\n({data['Runs']} runs, "
                  f"{data['Wall time']} on {data['Machine']})"]
    index = pages / "index.md"
    index.write_text("\n\n".join(parts) + "\n")
    return index


def _launch(root: Path) -> dict[str, Any]:
    path = root / STUDY_RUN_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def commit() -> str:
    """The project's git commit (short), marked when the working tree has uncommitted changes (the generated
    study pages aside: writing one study's page must not mark the next study's runs)."""
    from tricklab.config import PROJECT_ROOT, STUDY_PAGES

    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                            f":!{STUDY_PAGES.relative_to(PROJECT_ROOT)}"], cwd=PROJECT_ROOT, capture_output=True,
                           text=True).stdout.strip()
    return (done.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty else "")


def _config_hash(root: Path) -> str:
    """sha1 (12 hex) of the sweep's composed config, multirun.yaml."""
    path = root / "multirun.yaml"
    return hashlib.sha1(path.read_bytes()).hexdigest()[:12] if path.is_file() else "-"


def _machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores, {gpu}, torch {torch.__version__}, Python {platform.python_version()}"

