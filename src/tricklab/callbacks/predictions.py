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
        self.probs.append(outputs.detach().float().softmax(-1).cpu())  # (B, C); a fused pack's (K, B, C)
        self.labels.append(batch[1].detach().cpu())

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.probs:
            return
        probs, labels = torch.cat(self.probs), torch.cat(self.labels)
        if trainer.world_size > 1:
            probs, labels = (_in_test_set_order(pl_module.all_gather(t.to(pl_module.device))).cpu()
                             for t in (probs, labels))
        if trainer.is_global_zero:
            save_predictions(self.path, probs, labels)


def save_predictions(path: Path, probs: torch.Tensor, labels: torch.Tensor) -> None:
    """``probs`` (N, C) and ``labels`` (N,) of the test set as ``path`` (a .npz)."""
    np.savez_compressed(path, probs=probs.numpy().astype(np.float32), labels=labels.numpy())


def _in_test_set_order(gathered: torch.Tensor) -> torch.Tensor:
    """Every process's rows (world, n, ...) back in the test set's order: under data parallelism process r saw
    samples r, r+W, r+2W, ... (``IndexBatches``, unshuffled)."""
    return gathered.transpose(0, 1).reshape(-1, *gathered.shape[2:])
