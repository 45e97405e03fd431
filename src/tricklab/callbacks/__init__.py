"""Callbacks that record and guard a run; ``build_callbacks`` turns the ``callbacks`` config into them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig
from pytorch_lightning.callbacks import (
    Callback,
    EarlyStopping,
    ModelSummary,
    RichModelSummary,
)

from tricklab.callbacks.averaging import AveragedEvaluation, build_averaging
from tricklab.callbacks.checkpoints import RunCheckpoints
from tricklab.callbacks.diagnostics import LayerDiagnostics
from tricklab.callbacks.divergence import DivergenceGuard
from tricklab.callbacks.history import HistoryWriter
from tricklab.callbacks.predictions import TestPredictions
from tricklab.callbacks.progress import EpochRichProgressBar, EpochTQDMProgressBar
from tricklab.results import HISTORY_FILE, LAYERS_FILE, PREDICTIONS_FILE


@dataclass
class RunCallbacks:
    """The callbacks of one run; the named ones are read back when the run's results are written."""

    history: HistoryWriter
    guard: DivergenceGuard | None = None
    checkpoint: RunCheckpoints | None = None
    averaging: AveragedEvaluation | None = None
    others: list[Callback] = field(default_factory=list)

    def all(self) -> list[Callback]:
        # RunCheckpoints before HistoryWriter (also a Checkpoint): test(ckpt_path="best") asks the first one
        named = (self.averaging, self.checkpoint, self.history, self.guard)
        return [c for c in (*named, *self.others) if c is not None]


def build_callbacks(
    cfg: DictConfig, run_dir: Path, diagnostics: DictConfig | None = None, averaging: DictConfig | None = None,
    model_summary: bool = False,
) -> RunCallbacks:
    """History, test predictions, divergence guard, weight averaging, per-layer diagnostics, checkpoints
    (best + last), early stopping, progress bar, and the model summary when ``model_summary`` (verbose=true)."""
    average = build_averaging(averaging) if averaging is not None else None
    extra = tuple(f"val_{average.tag}/{m}" for m in ("loss", "acc", "ece")) if average else ()
    callbacks = RunCallbacks(history=HistoryWriter(run_dir / HISTORY_FILE, extra), averaging=average)
    callbacks.others.append(TestPredictions(run_dir / PREDICTIONS_FILE))
    if diagnostics is not None and diagnostics.enabled:
        callbacks.others.append(LayerDiagnostics(run_dir / LAYERS_FILE, diagnostics.every_n_steps,
                                                 diagnostics.histograms))
    if cfg.divergence.enabled:
        callbacks.guard = DivergenceGuard(cfg.divergence.get("max_loss_factor"))
    if cfg.checkpoint.enabled:
        # With early stopping the best epoch is the one it judges by: the weights tested are that checkpoint's.
        best_by = cfg.early_stopping if cfg.early_stopping.enabled else cfg.checkpoint
        callbacks.checkpoint = RunCheckpoints(run_dir / "checkpoints", best_by.monitor, best_by.mode,
                                              cfg.checkpoint.every_seconds)
    if cfg.early_stopping.enabled:
        es = cfg.early_stopping
        callbacks.others.append(
            EarlyStopping(monitor=es.monitor, mode=es.mode, patience=es.patience, min_delta=es.min_delta)
        )
    if cfg.progress_bar == "rich":
        callbacks.others += [EpochRichProgressBar(), *([RichModelSummary(max_depth=2)] if model_summary else [])]
    elif cfg.progress_bar == "tqdm":
        callbacks.others += [EpochTQDMProgressBar(), *([ModelSummary(max_depth=2)] if model_summary else [])]
    return callbacks
