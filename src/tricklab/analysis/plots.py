"""The report's figures (matplotlib, Agg backend): learning curves per config, the gradient-norm history where
the runs logged it, a heatmap of two swept factors, and per-layer activation-std and gradient-norm profiles from
the diagnostics' layers.csv."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from tricklab.analysis.summary import Report
    from tricklab.sweep import Run


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _by_x(runs: list[Run], rows_of, x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x values and the mean and sample std (ddof=1, as in the report's tables; 0 for a single run) of ``y_key``
    over ``runs`` at each x (finite values only)."""
    values: dict[float, list[float]] = defaultdict(list)
    for run in runs:
        for row in rows_of(run):
            if math.isfinite(row.get(y_key, math.nan)):
                values[row[x_key]].append(row[y_key])
    xs = np.array(sorted(values))
    spread = [np.std(values[x], ddof=1) if len(values[x]) > 1 else 0.0 for x in xs]
    return xs, np.array([np.mean(values[x]) for x in xs]), np.array(spread)


def _curve(ax: Axes, xs: np.ndarray, mean: np.ndarray, std: np.ndarray, label: str, color, **style) -> None:
    if len(xs):
        ax.plot(xs, mean, label=label, color=color, marker="o", markersize=3, **style)
        ax.fill_between(xs, mean - std, mean + std, color=color, alpha=0.15, linewidth=0)


def _colors(n: int):
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _label(row) -> str:
    """The config's label, marked when none of its runs completed."""
    return row.label if row.config.completed else f"{row.label} (diverged)" if row.statuses.get("diverged") \
        else f"{row.label} ({', '.join(row.statuses)})"


def _finish(fig, ax_with_legend: Axes, path: Path) -> Path:
    """Legend under the panels (one entry per config), tight layout, PNG."""
    handles, labels = ax_with_legend.get_legend_handles_labels()
    legend_rows = math.ceil(len(labels) / 2)
    bottom = (0.035 * legend_rows + 0.02) * 8 / fig.get_figheight() if handles else 0
    fig.tight_layout(rect=(0, bottom, 1, 1))
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(2, len(labels)), fontsize=8, frameon=False)
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def learning_curves(report: Report, out: Path) -> Path | None:
    """Validation accuracy and training loss per epoch, mean ± std over each config's runs."""
    if not any(run.history for run in report.sweep.runs):
        return None
    plt = _pyplot()
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4.8))
    for row, color in zip(report.configs, _colors(len(report.configs)), strict=True):
        runs = row.config.runs
        _curve(acc_ax, *_by_x(runs, lambda r: r.history, "epoch", "val/acc"), _label(row), color)
        _curve(loss_ax, *_by_x(runs, lambda r: r.history, "epoch", "train/loss"), _label(row), color)
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy (mean ± std over seeds)")
    loss_ax.set(xlabel="epoch", ylabel="training loss (log scale)", yscale="log",
                title="Training loss (mean ± std over seeds)")
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(f"Learning curves · {report.sweep.root.name}")
    return _finish(fig, acc_ax, out / "learning_curves.png")


def gradient_norms(report: Report, out: Path) -> Path | None:
    """The epoch mean of ‖g‖₂ before clipping (history.csv ``grad_norm``), mean ± std over each config's runs, on
    a log scale: where gradients explode, and whether clipping kept them down."""
    if not any(math.isfinite(row.get("grad_norm", math.nan)) for run in report.sweep.runs for row in run.history):
        return None  # not logged (callbacks.grad_norm=false leaves the column empty)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.8))
    for row, color in zip(report.configs, _colors(len(report.configs)), strict=True):
        _curve(ax, *_by_x(row.config.runs, lambda r: r.history, "epoch", "grad_norm"), _label(row), color)
    ax.set(xlabel="epoch", ylabel="‖g‖₂ before clipping, epoch mean (log scale)", yscale="log",
           title="Gradient norm (mean ± std over seeds)")
    ax.grid(alpha=0.3, which="both")
    ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(f"Gradient norms · {report.sweep.root.name}")
    return _finish(fig, ax, out / "gradient_norms.png")


def heatmap(report: Report, out: Path) -> Path | None:
    """Mean test accuracy over the first two swept factors (averaged over any others and the seeds)."""
    if len(report.sweep.swept) < 2:
        return None
    plt = _pyplot()
    rows_key, cols_key = report.sweep.swept[:2]
    runs = report.sweep.runs
    row_values = list(dict.fromkeys(r.factors.get(rows_key, "-") for r in runs))
    col_values = list(dict.fromkeys(r.factors.get(cols_key, "-") for r in runs))
    grid = np.full((len(row_values), len(col_values)), np.nan)
    for i, a in enumerate(row_values):
        for j, b in enumerate(col_values):
            accs = [r.metric("test/acc") for r in runs if r.status == "completed"
                    and r.factors.get(rows_key, "-") == a and r.factors.get(cols_key, "-") == b]
            if accs:
                grid[i, j] = np.nanmean(accs)
    fig, ax = plt.subplots(figsize=(1.6 * len(col_values) + 3, 1.0 * len(row_values) + 2))
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgray")  # all-diverged cells are NaN: gray
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        ax.text(j, i, "diverged" if np.isnan(value) else f"{value:.3f}", ha="center", va="center",
                color="black" if np.isnan(value) or value > np.nanmean(grid) else "white", fontsize=9)
    ax.set_xticks(range(len(col_values)), col_values)
    ax.set_yticks(range(len(row_values)), row_values)
    ax.set(xlabel=cols_key, ylabel=rows_key, title=f"Mean test accuracy: {rows_key} × {cols_key}")
    fig.colorbar(image, ax=ax, label="test accuracy")
    fig.tight_layout()
    fig.savefig(out / "heatmap.png", dpi=110)
    plt.close(fig)
    return out / "heatmap.png"


def layer_profiles(report: Report, out: Path) -> Path | None:
    """Activation std and gradient norm per layer, at the first and the last diagnosed step of each run."""
    if not any(run.layers for run in report.sweep.runs):
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
    for row, color in zip(report.configs, _colors(len(report.configs)), strict=True):
        runs = [run for run in row.config.runs if run.layers]
        for r, pick in enumerate((min, max)):
            def at_step(run: Run, pick=pick) -> list[dict]:
                step = pick(layer["step"] for layer in run.layers)
                return [layer for layer in run.layers if layer["step"] == step]

            for c, key in enumerate(("act_std", "grad_norm")):
                _curve(axes[r, c], *_by_x(runs, at_step, "layer", key), _label(row), color)
    for r, when in enumerate(("at initialisation (first diagnosed step)", "at the last diagnosed step")):
        axes[r, 0].set(ylabel="activation std (log scale)", title=f"Activation std {when}")
        axes[r, 1].set(ylabel="gradient norm ‖∂L/∂W‖ (log scale)", title=f"Gradient norm {when}")
    for ax in axes.flat:
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in axes[1]:
        ax.set_xlabel("weight layer (0 = input side)")
    fig.suptitle(f"Per-layer profiles · {report.sweep.root.name}")
    return _finish(fig, axes[0, 0], out / "layer_profiles.png")


def draw_all(report: Report, out: Path) -> list[Path]:
    """Every figure the runs have data for; returns the PNGs written."""
    drawn = (learning_curves(report, out), gradient_norms(report, out), heatmap(report, out),
             layer_profiles(report, out))
    return [path for path in drawn if path is not None]
