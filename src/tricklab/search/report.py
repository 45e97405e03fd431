"""``tricklab report <search dir>``: the trials of a search (best first; pruned and failed apart), the best config
as a command line, and Optuna's matplotlib figures, written to ``report.md`` + PNGs in that folder and printed.

A search folder is one holding ``search.json`` (the sweeper writes it); the study is read from its storage.
"""

from __future__ import annotations

import math
import shlex
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tricklab.analysis.report import REPORT_FILE, markdown_table
from tricklab.search.space import format_value
from tricklab.search.study import PRUNED_AT, RETRY_OF, SEARCH_FILE, load_search

FIGURES = ("optimization_history", "param_importances", "parallel_coordinate", "intermediate_values")
# Trial states in the order the table shows them, and how it names them (as metrics.json does).
STATE_ORDER = {"COMPLETE": ("completed", 0), "PRUNED": ("pruned", 1), "FAIL": ("failed", 2),
               "RUNNING": ("running", 3), "WAITING": ("waiting", 4)}


def is_search(root: Path) -> bool:
    """True for the folder of a search (``hparams_search=optuna``)."""
    return (Path(root) / SEARCH_FILE).is_file()


@dataclass
class SearchReport:
    """The trials table, the best trial's command line and the figures written."""

    root: Path
    header: list[str]
    rows: list[list[str]]
    counts: dict[str, int]
    best_command: str | None
    figures: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def summarise_search(root: Path) -> SearchReport:
    """The table of ``root``'s trials: completed by value (best first), then pruned, failed, running."""
    info, study = load_search(root)
    trials = sorted(study.get_trials(deepcopy=False), key=_order)
    params = list(info["params"])
    header = ["trial", "status", "value", "epochs", *params, "folder", "note"]
    rows = [[str(t.number), STATE_ORDER[t.state.name][0], _value(t), str(t.last_step or "-"),
             *(format_value(t.params[p]) if p in t.params else "-" for p in params), f"trial_{t.number}",
             _note(t, trials)] for t in trials]
    counts = {name: sum(STATE_ORDER[t.state.name][0] == name for t in trials) for name, _ in STATE_ORDER.values()}
    return SearchReport(Path(root), header, rows, counts, best_command(info, study))


def best_command(info: dict[str, Any], study: Any) -> str | None:
    """The best trial as a command line that trains it again (all its seeds: a grid over them), started the way
    the search was (``python train.py`` in a checkout, ``tricklab train`` installed; older search.json files
    recorded no launch words: the checkout's)."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        return None
    best = study.best_trial
    fixed = [o for o in info["fixed"] if not o.startswith("hparams_search=")]
    args = [*fixed, *(f"{key}={format_value(value)}" for key, value in best.params.items())]
    seeds = info["seeds_per_trial"]
    if seeds > 1:
        args = ["-m", *args, "seed=" + ",".join(str(s) for s in range(seeds))]
    return shlex.join([*info.get("launch", ["python", "train.py"]), *args])


def draw_figures(root: Path, study: Any) -> tuple[list[Path], dict[str, str]]:
    """Optuna's matplotlib figures as PNGs in ``root``; those it cannot draw yet (too few trials), with why."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    written, skipped = [], {}
    for name in FIGURES:
        with warnings.catch_warnings():  # Optuna marks its matplotlib figures experimental
            warnings.simplefilter("ignore")
            try:
                axes = getattr(vis, f"plot_{name}")(study)
            except (ValueError, RuntimeError, ZeroDivisionError) as err:
                skipped[name] = str(err) or type(err).__name__
                continue
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        path = Path(root) / f"search_{name}.png"
        figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    return written, skipped


def markdown(report: SearchReport) -> str:
    """The whole report.md of a search."""
    counts = ", ".join(f"{n} {name}" for name, n in report.counts.items() if n)
    parts = [f"# tricklab search report: {report.root.name}",
             f"{sum(report.counts.values())} trials: {counts}. Value: the best validation accuracy of the trial's "
             f"run (the mean over its seeds), for a pruned trial the last one it reported; completed trials "
             f"first, best first, then pruned, failed, running.",
             "## Trials", markdown_table(report.header, report.rows)]
    if report.best_command:
        parts += ["## Best config", f"```bash\n{report.best_command}\n```"]
    if report.figures:
        parts += ["## Figures", *(f"![{path.stem}]({path.name})" for path in report.figures)]
    if report.skipped:
        parts += ["Not drawn: " + "; ".join(f"{name} ({why})" for name, why in report.skipped.items())]
    return "\n\n".join(parts) + "\n"


def make_search_report(root: Path, to_wandb: bool = False, project: str = "tricklab",
                       group: str | None = None) -> SearchReport:
    """Summarise the search in ``root``, draw its figures, write report.md there, print the table; ``to_wandb``:
    also log the trials table and the figures to a W&B run (job type report) in the trials' group."""
    from rich.console import Console
    from rich.table import Table

    report = summarise_search(root)
    _, study = load_search(root)
    report.figures, report.skipped = draw_figures(root, study)
    (Path(root) / REPORT_FILE).write_text(markdown(report))
    console = Console() if sys.stdout.isatty() else Console(width=200)
    table = Table(title=f"tricklab search · {root}")
    for name in report.header:
        table.add_column(name, overflow="fold")
    for row in report.rows:
        table.add_row(*row, style=None if row[1] == "completed" else "dim")
    console.print(table)
    if report.best_command:
        console.print(f"best: {report.best_command}", soft_wrap=True)
    print(f"wrote {', '.join([REPORT_FILE, *(path.name for path in report.figures)])} in {root}")
    if to_wandb:
        from tricklab.analysis.report import log_report_run

        log_report_run(Path(root), report.header, report.rows, report.figures, project, group)
    return report


def _order(trial: Any) -> tuple[int, float, int]:
    rank = STATE_ORDER[trial.state.name][1]
    value = trial.value if trial.value is not None and math.isfinite(trial.value) else -math.inf
    return rank, -value, trial.number


def _value(trial: Any) -> str:
    if trial.value is None:
        return "-"
    std = trial.user_attrs.get("value_std")
    seeds = len(trial.user_attrs.get("seed_values", []))
    return f"{trial.value:.4f} ± {std:.4f} ({seeds} seeds)" if seeds > 1 else f"{trial.value:.4f}"


def _note(trial: Any, trials: list[Any]) -> str:
    """Why a trial did not complete, and which trial retried which."""
    notes = []
    if PRUNED_AT in trial.user_attrs:
        notes.append(f"pruned at epoch {trial.user_attrs[PRUNED_AT]}")
    if "error" in trial.user_attrs:
        notes.append(trial.user_attrs["error"])
    if RETRY_OF in trial.user_attrs:
        notes.append(f"retry of trial {trial.user_attrs[RETRY_OF]}")
    retries = [t.number for t in trials if t.user_attrs.get(RETRY_OF) == trial.number]
    if retries:
        notes.append(f"left running by a killed search; retried as trial {retries[0]}")
    return "; ".join(notes)
