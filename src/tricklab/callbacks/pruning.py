"""Reports a search trial's validation accuracy every epoch and stops the run when the pruner says so.

Our own rather than optuna-integration's PyTorchLightningPruningCallback, which imports ``lightning.pytorch``:
tricklab is built on ``pytorch_lightning`` and the two namespaces must not mix in one Trainer. The trial itself
(tricklab.search.trial.TrialLink) is handed in: a run does not reach up into the search that made it.
"""

from __future__ import annotations

from typing import Protocol

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


class Trial(Protocol):
    """What the reporter reports to: the metric the search monitors, and whether the trial stops at an epoch."""

    monitor: str

    def report(self, epoch: int, value: float) -> bool:
        """Record ``value`` at ``epoch``; True when the trial is to stop (pruned)."""


class TrialReporter(Callback):
    """After each validation: report to the trial; on a pruning decision stop training (the run then ends with
    status ``pruned``, ``pruned_at`` = the epoch)."""

    def __init__(self, link: Trial) -> None:
        self.link = link
        self.pruned_at: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self.pruned_at is not None:
            return
        value = trainer.callback_metrics.get(self.link.monitor)
        if value is None:
            return
        epoch = trainer.current_epoch + 1
        if self.link.report(epoch, float(value)):
            self.pruned_at = epoch
            trainer.should_stop = True
