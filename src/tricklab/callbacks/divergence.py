"""Stop training when it diverges, and remember the step.

Divergence = the training loss or any gradient is NaN/Inf, or the loss exceeds ``max_loss_factor`` × the loss
of the first step (L_t > k·L_0: the run has left the region it started in and will not come back). Gradients are
checked when the module computes their norm every step (``callbacks.grad_norm=true`` or ``clip=norm``); else a
NaN/Inf gradient shows one step later, as the NaN/Inf loss of the weights it produced.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from tricklab.stages import CallSteps, StepCallback


class DivergenceGuard(StepCallback):
    """Sets ``trainer.should_stop`` on divergence; ``diverged_at_step`` is then the (0-based) optimizer step whose
    loss or gradient was bad, ``reason`` says which.

    Checks every step of a training call after its last step (the ``after_steps`` stage), with one host sync per
    call; the rest of that call's steps (``trainer.steps_per_call`` at most) have run by then.
    """

    def __init__(self, max_loss_factor: float | None = None) -> None:
        self.max_loss_factor = max_loss_factor
        # What divergence stops: the trainer; in a fused pack, the one member (tricklab.fuse.members).
        self.stop_run: Callable[[pl.Trainer], None] = _stop_trainer
        self.initial_loss: float | None = None
        self.diverged_at_step: int | None = None
        self.reason: str | None = None

    def after_steps(self, trainer: pl.Trainer, steps: CallSteps) -> None:
        # Gradients are checked when the module computed their norms (callbacks.grad_norm, clip=norm), but not
        # under a gradient scaler: its inf gradients are normal (it skips those steps).
        check_grads = steps.grad_norms is not None and not _scales_gradients(trainer)
        values = [steps.losses.float(), *([steps.grad_norms.float()] if check_grads else [])]
        values = torch.stack(values).tolist()  # one sync
        for i, loss in enumerate(values[0]):
            if self._check(trainer, steps.first_step + i, loss, values[1][i] if check_grads else 0.0):
                return

    def check_weights(self, trainer: pl.Trainer, model: nn.Module) -> bool:
        """After a failure: True (and the run stopped as diverged) when ``model``'s weights are no longer finite,
        so that a consumer that met the NaN before this guard did (a logger, a histogram) does not turn a
        divergence into a failure."""
        if self.diverged_at_step is not None:
            return True
        if all(torch.isfinite(p).all() for p in model.parameters()):
            return False
        self._stop(trainer, trainer.global_step, "non-finite weights")
        return True

    def _check(self, trainer: pl.Trainer, step: int, loss: float, grad_norm: float) -> bool:
        """True when step ``step`` (loss, ‖g‖) diverged, and stop the trainer then."""
        if not math.isfinite(grad_norm):
            why = "non-finite gradient"
        elif not math.isfinite(loss):
            why = "non-finite loss"
        elif self.initial_loss is None:
            self.initial_loss = loss
            return False
        elif self.max_loss_factor is not None and loss > self.max_loss_factor * self.initial_loss:
            why = f"loss {loss:.4g} > {self.max_loss_factor:g} × first loss {self.initial_loss:.4g}"
        else:
            return False
        self._stop(trainer, step, why)
        return True

    def state_dict(self) -> dict[str, Any]:
        """The first step's loss L₀, so that a resumed run compares against the same reference."""
        return {"initial_loss": self.initial_loss}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.initial_loss = state_dict.get("initial_loss", self.initial_loss)

    def _stop(self, trainer: pl.Trainer, step: int, reason: str) -> None:
        if self.diverged_at_step is None:
            self.diverged_at_step, self.reason = step, reason
        self.stop_run(trainer)


def _stop_trainer(trainer: pl.Trainer) -> None:
    trainer.should_stop = True


def _scales_gradients(trainer: pl.Trainer) -> bool:
    """Mixed precision with a gradient scaler: its inf gradients are normal, the scaler skips those steps."""
    return getattr(trainer.precision_plugin, "scaler", None) is not None
