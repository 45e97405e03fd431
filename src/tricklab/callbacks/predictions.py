"""``test_predictions.npz``: every run's predicted class probabilities on the test set, with the labels.

The report averages them over the seeds of a config: an ensemble p̄(y|x) = (1/K) Σ_k p_k(y|x).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback


class TestPredictions(Callback):
    """Collects softmax(logits) of the test batches (``test_step`` returns the logits) and saves them."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.probs: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.probs, self.labels = [], []

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        self.probs.append(outputs.detach().float().softmax(1).cpu())
        self.labels.append(batch[1].detach().cpu())

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero and self.probs:
            np.savez_compressed(self.path, probs=torch.cat(self.probs).numpy().astype(np.float32),
                                labels=torch.cat(self.labels).numpy())
