"""The progress bar, numbering epochs from 1 as history.csv, the checkpoints and the closing table do, and saying
what it counts: Lightning's calls of ``training_step``, each up to ``trainer.steps_per_call`` optimizer steps.

    epoch 3/20 · 29 steps in 1 call ━━━━━━━━━━━━━━━━ 1/1 0:00:00 • 0:00:00 val/loss: 0.412 val/acc: 0.874

Lightning's own bars say ``Epoch 2/19`` (0-based, of max_epochs - 1) and count its calls as if they were steps.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar, TQDMProgressBar

from tricklab.metrics import steps_per_epoch


def epoch_label(trainer: pl.Trainer) -> str:
    """"epoch 3/20 · 29 steps in 1 call" for the epoch the trainer is in (1-based; no total when unbounded)."""
    total = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
    calls = trainer.num_training_batches
    if not math.isfinite(calls):
        return f"epoch {trainer.current_epoch + 1}{total}"
    steps = steps_per_epoch(trainer)
    return (f"epoch {trainer.current_epoch + 1}{total} · {steps} step{'s' * (steps != 1)} in {int(calls)} "
            f"call{'s' * (calls != 1)}")


class EpochRichProgressBar(RichProgressBar):
    """Lightning's rich bar with ``epoch_label`` as the training bar's description."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        if self.progress is not None and self.train_progress_bar_id is not None:
            self.progress.update(self.train_progress_bar_id, description=epoch_label(trainer))
            self.refresh()


class EpochTQDMProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar with ``epoch_label`` as the training bar's description."""

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(epoch_label(trainer))
