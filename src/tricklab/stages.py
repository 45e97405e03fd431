"""The named stages of an optimizer step that callbacks plug into (``ClassifierModule.optimizer_step_on``).

A callback that acts per optimizer step subclasses ``StepCallback`` and overrides the stages it needs; the
module calls them in the order its step lists them, whatever the order the callbacks were given in. ``step`` is
the 0-based index of the optimizer step (``trainer.global_step`` before the step is counted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch import nn


@dataclass
class CallSteps:
    """The optimizer steps of one Lightning ``training_step`` call, as device tensors (read with one sync).

    ``losses``: (S,) training loss of each step, penalty excluded; ``grad_norms``: (S,) ‖g‖₂ before clipping,
    or None when the run does not compute it (``callbacks.grad_norm=false`` and no norm clipping).
    """

    first_step: int
    losses: torch.Tensor
    grad_norms: torch.Tensor | None = None


class StepCallback(Callback):
    """A Lightning callback with per-step stages; each stage does nothing unless overridden."""

    def before_forward(self, trainer: pl.Trainer, step: int, model: nn.Module) -> None:
        """Before the forward pass of ``step``."""

    def after_backward(self, trainer: pl.Trainer, step: int, model: nn.Module) -> None:
        """Gradients are in ``p.grad`` (unscaled, before clipping); the weights are not yet updated."""

    def after_update(self, trainer: pl.Trainer, step: int, model: nn.Module) -> None:
        """The optimizer has updated the weights of ``step`` (the schedule has not yet stepped)."""

    def after_steps(self, trainer: pl.Trainer, steps: CallSteps) -> None:
        """After the last step of a ``training_step`` call: once per call, where a host sync is affordable."""


STAGES = ("before_forward", "after_backward", "after_update", "after_steps")


@dataclass
class StageHooks:
    """For each stage, the bound methods of the callbacks that override it, in the order the callbacks were given
    (a stage nobody plugs into costs the step an empty loop)."""

    before_forward: list[Callable[..., Any]] = field(default_factory=list)
    after_backward: list[Callable[..., Any]] = field(default_factory=list)
    after_update: list[Callable[..., Any]] = field(default_factory=list)
    after_steps: list[Callable[..., Any]] = field(default_factory=list)

    @classmethod
    def of(cls, callbacks: list[Any]) -> StageHooks:
        hooks = cls()
        for callback in callbacks:
            if isinstance(callback, StepCallback):
                for stage in STAGES:
                    if getattr(type(callback), stage) is not getattr(StepCallback, stage):
                        getattr(hooks, stage).append(getattr(callback, stage))
        return hooks
