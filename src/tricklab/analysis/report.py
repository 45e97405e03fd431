"""``tricklab report <run or sweep dir>``: a table of every config (mean ± std over seeds), the effect of each
swept factor, seed ensembles, and plots; written to ``report.md`` + PNGs in that folder and printed.

Numbers: mean ± sample std (ddof=1) over a config's *completed* runs; diverged and failed runs are counted in
the status column and listed, never averaged in. The ensemble of a config predicts p̄(y|x) = (1/K) Σ_k p_k(y|x)
over its K completed seeds (their saved test probabilities).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np

from tricklab.analysis.summary import RANK_BY, ConfigSummary, Report, Stat, statuses_text
from tricklab.errors import DataError
from tricklab.sweep import Sweep, load_sweep

METRICS = ("test/acc", "test/loss", "test/ece", "val/acc", "val/loss")
REPORT_FILE = "report.md"


def averaged_metrics(sweep: Sweep) -> tuple[str, ...]:
    """Test metrics of averaged weights (test_ema/acc, test_swa/acc...) present in any run."""
    keys = {k for run in sweep.runs for k in (run.metrics.get("test") or {}) if k.endswith("/acc")}
    return tuple(sorted(k for k in keys if k != "test/acc"))


def summarise(sweep: Sweep, rank_by: str = RANK_BY, metrics: tuple[str, ...] | None = None) -> Report:
    """The table rows (best first by the mean of ``rank_by``, by default test accuracy) with ``metrics`` (by
    default METRICS and any averaged weights' accuracy), and the effect of each swept factor."""
    metrics = metrics or METRICS + averaged_metrics(sweep)
    rows = [
        ConfigSummary(
            label=config.label(sweep.swept), config=config,
            stats={key: Stat.of(config.values(key)) for key in metrics},
            statuses=Counter(run.status for run in config.runs),
            epochs=float(np.mean([run.metrics.get("epochs") or 0 for run in config.runs])),
            wall_time_s=float(np.mean([run.metrics.get("wall_time_s") or 0 for run in config.runs])),
            ensemble=config.ensemble(), rank_by=rank_by,
        )
        for config in sweep.configs
    ]
    rows.sort(key=lambda row: row.rank, reverse=True)
    return Report(sweep, metrics, rows, {factor: factor_effect(sweep, factor) for factor in sweep.swept})


def factor_effect(sweep: Sweep, factor: str) -> list[tuple[str, Stat | None, Counter]]:
    """For each value of ``factor``: test accuracy over all completed runs with it (so averaged over the other
    factors and the seeds), and the status counts."""
    values = list(dict.fromkeys(run.factors.get(factor, "-") for run in sweep.runs))
    effect = []
    for value in values:
        runs = [run for run in sweep.runs if run.factors.get(factor, "-") == value]
        accs = np.array([run.metric(RANK_BY) for run in runs if run.status == "completed"], dtype=float)
        effect.append((value, Stat.of(accs[np.isfinite(accs)]), Counter(run.status for run in runs)))
    return effect


def _cell(row: ConfigSummary, key: str) -> str:
    stat = row.stats.get(key)
    if stat is not None:
        return str(stat)
    return "diverged" if row.statuses.get("diverged") else "—"


def table(report: Report) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the configs table; a config's ensemble row follows it."""
    header = ["config", "runs", "status", *report.metrics, "epochs", "wall time (s)"]
    rows = []
    for row in report.configs:
        rows.append([row.label, str(len(row.config.runs)), statuses_text(row.statuses),
                     *(_cell(row, key) for key in report.metrics), f"{row.epochs:.1f}", f"{row.wall_time_s:.1f}"])
        if row.ensemble:
            ens = row.ensemble
            cells = {key: f"{value:.4f}" for key, value in ens.items() if key.startswith("test/")}
            rows.append([f"↳ ensemble of its {ens['members']} seeds", str(ens["members"]), "ensemble",
                         *(cells.get(key, "") for key in report.metrics), "", ""])
    return header, rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table (``|`` in cells escaped)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(report: Report) -> str:
    """The whole report.md."""
    sweep = report.sweep
    parts = [
        f"# tricklab report: {sweep.root.name}",
        f"{len(sweep.runs)} runs in {len(report.configs)} configs; swept: {', '.join(sweep.swept) or 'nothing'}. "
        f"Mean ± sample std over the completed runs of each config, best {RANK_BY} first; "
        f"val/* are the last epoch's. An ensemble row averages the seeds' predicted test probabilities.",
        "## Configs", markdown_table(*table(report)),
    ]
    for factor, effect in report.effects.items():
        rows = [[value, str(stat) if stat else "—", str(stat.n if stat else 0), statuses_text(counts)]
                for value, stat, counts in effect]
        parts += [f"## Effect of {factor} (averaged over the other factors and seeds)",
                  markdown_table([factor, RANK_BY, "completed runs", "status"], rows)]
    bad = [run for run in sweep.runs if run.status != "completed"]
    if bad or sweep.unreadable:
        rows = [[str(run.path.relative_to(sweep.root)), run.status, str(run.metrics.get("seed", "")),
                 _blank_if_none(run.metrics.get("diverged_at_step")),
                 str(run.metrics.get("diverged_reason") or run.metrics.get("error") or "")] for run in bad]
        rows += [[str(path.relative_to(sweep.root)), "unreadable", "", "", f"metrics.json: {why}"]
                 for path, why in sweep.unreadable.items()]
        parts += ["## Runs that did not complete", markdown_table(["run", "status", "seed", "step", "why"], rows)]
    if report.findings:
        from tricklab.analysis.study_page import findings_markdown

        parts.insert(2, findings_markdown(report.findings, report.study))
    if report.plots:
        parts += ["## Plots", *(f"![{path.stem}]({path.name})" for path in report.plots)]
    return "\n\n".join(parts) + "\n"


def print_table(report: Report, title: str | None = None) -> None:
    """The configs table on the terminal, under ``title`` (by default the report's)."""
    from rich.console import Console
    from rich.table import Table

    header, rows = table(report)
    console = Console() if sys.stdout.isatty() else Console(width=200)  # piped: don't squeeze to 80 columns
    out = Table(title=title or f"tricklab report · {report.sweep.root}")
    for name in header:
        out.add_column(name, overflow="fold")
    for row in rows:
        out.add_row(*row, style="dim" if row[2] == "ensemble" else None)
    console.print(out)


def log_to_wandb(report: Report, project: str, group: str | None) -> None:
    """The table and plots to a W&B run (job_type report) in the sweep's group."""
    log_report_run(report.sweep.root, *table(report), report.plots, project, group)


def log_report_run(root: Path, header: list[str], rows: list[list[str]], images: list[Path], project: str,
                   group: str | None) -> None:
    """A W&B run (job type ``report``, named ``report-<folder>``) holding a report's table and images, in
    ``group`` (default: the group of the folder's runs, which their sweeper kept in it, else the folder's name)."""
    import wandb

    from tricklab.folders import sweep_group
    from tricklab.loggers import wandb_mode

    root = Path(root)
    run = wandb.init(project=project, group=group or sweep_group(root), job_type="report", name=f"report-{root.name}",
                     dir=str(root), mode=wandb_mode("auto"), reinit="create_new")
    run.log({"report/configs": wandb.Table(columns=header, data=rows),
             **{f"report/{path.stem}": wandb.Image(str(path)) for path in images}})
    run.finish()


def make_report(root: Path, to_wandb: bool = False, project: str = "tricklab", group: str | None = None,
                page: Path | None = None) -> Report:
    """Summarise the runs below ``root``, draw the plots, write report.md there, print the table; with ``page``
    (a folder), also write the study's page there (a study's runs only)."""
    from tricklab.analysis.plots import draw_all
    from tricklab.analysis.study import assess
    from tricklab.analysis.study_page import study_of

    report = summarise(load_sweep(root))
    study = study_of(report.sweep)
    if study is not None:
        report.study, report.findings = study, assess(study, report.sweep)
    _check_writable(Path(root))
    try:
        report.plots = draw_all(report, Path(root))
        (Path(root) / REPORT_FILE).write_text(markdown(report))
    except OSError as err:  # read-only, full disk: one paragraph, the runs' own files are never written here
        raise DataError(_unwritable_message(Path(root), f"writing the report failed ({err.strerror or err})")) from None
    print_table(report)
    print(f"wrote {', '.join([REPORT_FILE, *(path.name for path in report.plots)])} in {root}")
    if page is not None:
        if study is None:
            raise DataError(f"--page writes a study's page, but the runs in {root} were not launched as a study "
                            f"(their saved config has no study block); tricklab study list shows the studies.")
        from tricklab.analysis.study_page import write_page

        print(f"wrote {write_page(report, study, Path(page))}")
    if to_wandb:
        log_to_wandb(report, project, group)
    return report


def _check_writable(root: Path) -> None:
    """Refuse a folder the report cannot be written into, before any plot is drawn there."""
    from tricklab.run.preflight import unwritable

    if why := unwritable(root):
        raise DataError(_unwritable_message(root, why))


def _unwritable_message(root: Path, why: str) -> str:
    return (f"{root} cannot hold the report: {why}. tricklab report writes {REPORT_FILE} and its plots into the "
            f"folder it reads; make it writable, or report a copy (cp -r {root} /tmp/report-copy && tricklab report "
            f"/tmp/report-copy).")


def _blank_if_none(value: object) -> str:
    """The value as text, "" for None (a step 0 still shows as 0)."""
    return "" if value is None else str(value)
