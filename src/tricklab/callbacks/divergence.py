"""Stop training the moment the training loss is NaN or Inf, and remember the step."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


class DivergenceGuard(Callback):
    """Sets ``trainer.should_stop`` on a non-finite loss; ``diverged_at_step`` is then the global step."""

    def __init__(self) -> None:
        self.diverged_at_step: int | None = None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged_at_step = trainer.global_step
            trainer.should_stop = True
