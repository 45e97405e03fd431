"""The LightningModule: cross-entropy classification with the run's optimizer, schedule and penalty.

Metrics are accumulated on the device during an epoch and logged once per epoch (train/*, val/*,
test/*, lr, grad_norm): per-step ``self.log`` calls would cost more than a small net's step.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from tricklab.tricks.optim import build_optimizer
from tricklab.tricks.regularization import penalized_weights, penalty
from tricklab.tricks.schedule import build_schedule


class EpochStats:
    """Running sums of loss, correct predictions and samples, kept as device tensors (no sync per step)."""

    def __init__(self) -> None:
        self.loss_sum: torch.Tensor | float = 0.0
        self.correct: torch.Tensor | float = 0.0
        self.count = 0

    def update(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Add a batch: its mean loss times its size, and its number of correct argmax predictions."""
        self.loss_sum = self.loss_sum + loss.detach() * len(y)
        self.correct = self.correct + (logits.detach().argmax(1) == y).sum()
        self.count += len(y)

    def compute(self, prefix: str) -> dict[str, torch.Tensor | float]:
        """Mean loss and accuracy so far, as ``<prefix>/loss`` and ``<prefix>/acc``.

        Tensors stay on the device they were accumulated on; with no batch yet they are plain floats, which
        Lightning puts on the module's device (a CPU tensor would break a NCCL all-reduce under DDP).
        """
        n = max(self.count, 1)
        return {f"{prefix}/loss": self.loss_sum / n, f"{prefix}/acc": self.correct / n}


class ClassifierModule(pl.LightningModule):
    """``model`` trained with cross-entropy; configs are plain dicts so checkpoints stay portable."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any],
        regularization: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.save_hyperparameters(ignore=["model"])
        reg = regularization or {}
        self.l1, self.l2 = float(reg.get("l1", 0.0)), float(reg.get("l2", 0.0))
        self.stats = {"train": EpochStats(), "val": EpochStats(), "test": EpochStats()}
        self.grad_norm_sum: torch.Tensor | float = 0.0
        self.grad_norm_steps = 0
        self.last_grad_norm: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        self.stats["train"].update(loss, logits, y)
        if self.l1 or self.l2:
            return loss + penalty(penalized_weights(self.model), self.l1, self.l2)
        return loss

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        x, y = batch
        logits = self.model(x)
        self.stats[split].update(F.cross_entropy(logits, y), logits, y)
        return logits

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Returns the logits, for callbacks that keep the test predictions."""
        return self._eval_step(batch, "test")

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Accumulate ‖g‖₂ over all parameters (before clipping); ``last_grad_norm`` is this step's."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if grads:
            self.last_grad_norm = torch.nn.utils.get_total_norm(grads)
            self.grad_norm_sum = self.grad_norm_sum + self.last_grad_norm
            self.grad_norm_steps += 1

    def on_train_epoch_start(self) -> None:
        self.stats["train"] = EpochStats()
        self.grad_norm_sum, self.grad_norm_steps = 0.0, 0
        # The rate this epoch starts with: Lightning steps epoch schedules before on_train_epoch_end.
        self.epoch_lr = self.trainer.optimizers[0].param_groups[0]["lr"]

    def on_train_epoch_end(self) -> None:
        metrics = self.stats["train"].compute("train")
        metrics["lr"] = float(self.epoch_lr)  # a number: Lightning makes it a tensor on the module's device
        metrics["grad_norm"] = self.grad_norm_sum / max(self.grad_norm_steps, 1)
        self.log_dict(metrics, prog_bar=False, sync_dist=True)

    def on_validation_epoch_start(self) -> None:
        self.stats["val"] = EpochStats()

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.stats["val"].compute("val"), prog_bar=True, sync_dist=True)

    def on_test_epoch_start(self) -> None:
        self.stats["test"] = EpochStats()

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.stats["test"].compute("test"), sync_dist=True)

    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self.model, self.hparams.optimizer)
        schedule = build_schedule(
            optimizer, self.hparams.scheduler, self.trainer.max_epochs, int(self.trainer.estimated_stepping_batches)
        )
        return optimizer if schedule is None else {"optimizer": optimizer, "lr_scheduler": schedule}
