"""Callbacks that record and guard a run; ``build_callbacks`` turns the ``callbacks`` config into them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig
from pytorch_lightning.callbacks import (
    Callback,
    EarlyStopping,
    ModelCheckpoint,
    ModelSummary,
    RichModelSummary,
    RichProgressBar,
    TQDMProgressBar,
)

from tricklab.callbacks.divergence import DivergenceGuard
from tricklab.callbacks.history import HistoryWriter
from tricklab.results import HISTORY_FILE


@dataclass
class RunCallbacks:
    """The callbacks of one run; the named ones are read back when the run's results are written."""

    history: HistoryWriter
    guard: DivergenceGuard | None = None
    checkpoint: ModelCheckpoint | None = None
    others: list[Callback] = field(default_factory=list)

    def all(self) -> list[Callback]:
        """ModelCheckpoint before HistoryWriter: Lightning's "best" checkpoint is the first Checkpoint."""
        return [c for c in (self.checkpoint, self.history, self.guard, *self.others) if c is not None]


def build_callbacks(cfg: DictConfig, run_dir: Path) -> RunCallbacks:
    """History, divergence guard, checkpoints (best + last), early stopping, summary and progress bar."""
    callbacks = RunCallbacks(history=HistoryWriter(run_dir / HISTORY_FILE))
    if cfg.divergence.enabled:
        callbacks.guard = DivergenceGuard()
    if cfg.checkpoint.enabled:
        callbacks.checkpoint = ModelCheckpoint(
            dirpath=run_dir / "checkpoints", monitor=cfg.checkpoint.monitor, mode=cfg.checkpoint.mode,
            save_last=True, filename="best-epoch{epoch:03d}", auto_insert_metric_name=False,
        )
    if cfg.early_stopping.enabled:
        es = cfg.early_stopping
        callbacks.others.append(
            EarlyStopping(monitor=es.monitor, mode=es.mode, patience=es.patience, min_delta=es.min_delta)
        )
    if cfg.progress_bar == "rich":
        callbacks.others += [RichProgressBar(), RichModelSummary(max_depth=2)]
    elif cfg.progress_bar == "tqdm":
        callbacks.others += [TQDMProgressBar(), ModelSummary(max_depth=2)]
    return callbacks
