"""Stop training the moment it diverges, and remember the step.

Divergence = the training loss or any gradient is NaN/Inf, or the loss exceeds ``max_loss_factor`` × the loss
of the first step (L_t > k·L_0: the run has left the region it started in and will not come back).
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback


class DivergenceGuard(Callback):
    """Sets ``trainer.should_stop`` on divergence; ``diverged_at_step`` is then the (0-based) optimizer step whose
    loss or gradient was bad, ``reason`` says which."""

    def __init__(self, max_loss_factor: float | None = None) -> None:
        self.max_loss_factor = max_loss_factor
        self.initial_loss: float | None = None
        self.diverged_at_step: int | None = None
        self.reason: str | None = None

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        # Callbacks run before the module's hook: the module's ‖g‖ of this step (ClassifierModule keeps one)
        # is read at the batch's end instead of computing the norm twice.
        if hasattr(pl_module, "last_grad_norm") or _scales_gradients(trainer):
            return
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if grads and not torch.isfinite(torch.nn.utils.get_total_norm(grads)):
            self._stop(trainer, trainer.global_step, "non-finite gradient")

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        step = trainer.global_step - 1  # the step this loss was computed at
        grad_norm = None if _scales_gradients(trainer) else getattr(pl_module, "last_grad_norm", None)
        numbers = [loss.detach().float()] + ([] if grad_norm is None else [grad_norm.detach().float()])
        value, *grad = torch.stack(numbers).tolist()  # one host sync for the loss and ‖g‖
        if grad and not math.isfinite(grad[0]):
            self._stop(trainer, step, "non-finite gradient")
        elif not math.isfinite(value):
            self._stop(trainer, step, "non-finite loss")
        elif self.initial_loss is None:
            self.initial_loss = value
        elif self.max_loss_factor is not None and value > self.max_loss_factor * self.initial_loss:
            why = f"loss {value:.4g} > {self.max_loss_factor:g} × first loss {self.initial_loss:.4g}"
            self._stop(trainer, step, why)

    def state_dict(self) -> dict[str, Any]:
        """The first step's loss L₀, so that a resumed run compares against the same reference."""
        return {"initial_loss": self.initial_loss}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.initial_loss = state_dict.get("initial_loss", self.initial_loss)

    def _stop(self, trainer: pl.Trainer, step: int, reason: str) -> None:
        if self.diverged_at_step is None:
            self.diverged_at_step, self.reason = step, reason
        trainer.should_stop = True


def _scales_gradients(trainer: pl.Trainer) -> bool:
    """Mixed precision with a gradient scaler: its inf gradients are normal, the scaler skips those steps."""
    return getattr(trainer.precision_plugin, "scaler", None) is not None
