"""The LightningModule: cross-entropy classification, one optimizer step at a time in ``optimizer_step_on``.

It optimizes manually. A training batch is a run of minibatches (``StepBatches``, or one plain ``(x, y)``),
each one optimizer step; ``optimizer_step_on`` lists the stages of that step in the order they run, each a call
of the trick that does it (``tricks/``, built once into the module's one ``StepTricks``) or of the callbacks that
plug into the stage (``stages.StepCallback``).
Metrics are accumulated on the device and logged once per epoch (``metrics.log_epoch``).
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.strategies import SingleDeviceStrategy
from torch import nn

from tricklab.data.batches import Batch, StepBatches, minibatches
from tricklab.internals import count_optimizer_step
from tricklab.metrics import EpochStats, EvalMetrics, log_epoch, steps_per_epoch
from tricklab.stages import CallSteps, StageHooks
from tricklab.tricks.clip import grad_norm
from tricklab.tricks.optim import build_optimizer
from tricklab.tricks.schedule import Schedule, build_schedule
from tricklab.tricks.step import StepTricks

RANDOM_STATE = "torch_random_state"  # where a checkpoint keeps torch's random number generators' state


class ClassifierModule(pl.LightningModule):
    """``model`` trained with cross-entropy and the step's ``tricks`` (``tricklab.tricks.step.build_step_tricks``);
    the hyper-parameters saved are the plain config sections the tricks were built from, so checkpoints stay
    portable.

    ``tricks.norms_needed``: compute ‖g‖₂ before clipping every step (always done to clip by norm), log its epoch
    mean as ``grad_norm`` and let the divergence guard check it.
    """

    members = False  # a fused pack of stacked models (tricklab.fuse.module.PackModule): per-member norms

    def __init__(self, model: nn.Module, tricks: StepTricks) -> None:
        super().__init__()
        if tricks.members != self.members:
            raise ValueError(f"{type(self).__name__} takes step tricks built with members={self.members}")
        self.automatic_optimization = False
        self.model = model
        self.save_hyperparameters(tricks.config)
        self.tricks = tricks
        self.schedule: Schedule | None = None
        self.stats = {"train": EpochStats(), "val": EvalMetrics(), "test": EvalMetrics()}
        self.epoch_grad_norms: list[torch.Tensor] = []  # each training call's (S,) ‖g‖₂
        # Set when training starts:
        self.hooks = StageHooks()  # the callbacks' stages
        self.lightning_optimizer: Any = None  # Lightning's wrapper of the optimizer (it counts steps)
        self.torch_optimizer: torch.optim.Optimizer | None = None
        self.params: list[nn.Parameter] = []  # the optimizer's parameters
        self.scaler: torch.amp.GradScaler | None = None  # 16-mixed precision's gradient scaler
        self.plain_steps = False  # one device, no gradient scaler: torch's own backward and step
        self.validated_epoch = -1  # the last epoch that ran validation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: StepBatches | Batch, batch_idx: int) -> None:
        """One optimizer step per minibatch; the call's metrics are reduced once, after its last step."""
        trainer = self.trainer
        first_step = trainer.global_step
        losses, logits, targets, norms = [], [], [], []
        for i, (x, y) in enumerate(minibatches(batch)):
            loss, step_logits, norm = self.optimizer_step_on(trainer, first_step + i, x, y)
            losses.append(loss)
            logits.append(step_logits)
            targets.append(y)
            if norm is not None:
                norms.append(norm)
        steps = CallSteps(first_step, torch.stack(losses), torch.stack(norms) if norms else None)
        self.stats["train"].add(losses, logits, targets)
        if steps.grad_norms is not None:
            self.epoch_grad_norms.append(steps.grad_norms)
        for hook in self.hooks.after_steps:
            hook(trainer, steps)                                           # divergence guard, diagnostics' rows

    def optimizer_step_on(self, trainer: pl.Trainer, step: int, x: torch.Tensor, y: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Optimizer step ``step`` (0-based) on the minibatch (x, y); returns its loss, logits and ‖g‖₂ before
        clipping (None unless needed)."""
        model, hooks, tricks = self.model, self.hooks, self.tricks
        for hook in hooks.before_forward:
            hook(trainer, step, model)                                     # diagnostics: watch activations
        loss, logits, objective = self.objective(x, y)                     # forward, cross-entropy, + penalty
        tricks.gradients(self, objective, x, y)                            # g = ∂objective/∂θ: one backward (sam: 2)
        with_grads = [p for p in self.params if p.grad is not None] if tricks.grads_needed else []
        grads = [p.grad for p in with_grads]
        norm = grad_norm(grads, self.members) if tricks.norms_needed and grads else None  # ‖g‖₂ before clipping
        for hook in hooks.after_backward:
            hook(trainer, step, model)                                     # diagnostics: ‖∂L/∂W_l‖, W_l kept
        if tricks.clip is not None and grads:
            tricks.clip(with_grads, grads, norm)                           # clip by norm or by value
        self.apply_update()                                                # θ ← optimizer(θ, g); step counted
        for hook in hooks.after_update:
            hook(trainer, step, model)                                     # EMA/SWA; update ratios
        if self.schedule is not None:
            self.schedule.after_optimizer_step()                           # per-step schedules
        return loss.detach(), logits.detach(), norm

    def objective(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The forward pass at the current weights: (loss, logits, objective = loss + λ₁Σ|w| + λ₂/2·Σw²)."""
        logits = self.model(x)
        loss = self.loss(logits, y)                                        # cross-entropy
        penalty = self.tricks.penalty
        return loss, logits, loss if penalty is None else loss + penalty(self.model)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean cross-entropy −log p(y|x) of the minibatch."""
        return F.cross_entropy(logits, y)

    def compute_gradients(self, objective: torch.Tensor) -> None:
        """Fresh gradients of ``objective``; under a gradient scaler (16-mixed) unscaled, so that norms, clipping
        and callbacks see the true gradients. DDP syncs them in Lightning's ``manual_backward``."""
        self.torch_optimizer.zero_grad(set_to_none=True)
        if self.plain_steps:
            objective.backward()
            return
        self.manual_backward(objective)
        if self.scaler is not None:
            self.scaler.unscale_(self.torch_optimizer)

    def apply_update(self) -> None:
        """The optimizer's update, counted in ``trainer.global_step``; the gradient scaler skips the update of a
        step whose gradients are not finite."""
        if self.scaler is None:
            count_optimizer_step(self.lightning_optimizer, self.torch_optimizer.step)
        else:
            count_optimizer_step(self.lightning_optimizer, self._scaled_update)

    def _scaled_update(self) -> None:
        self.scaler.step(self.torch_optimizer)
        self.scaler.update()

    def on_train_start(self) -> None:
        trainer = self.trainer
        self.scaler = getattr(trainer.precision_plugin, "scaler", None)
        self.plain_steps = type(trainer.strategy) is SingleDeviceStrategy and self.scaler is None
        self.lightning_optimizer = self.optimizers()
        self.torch_optimizer = self.lightning_optimizer.optimizer
        self.params = [p for group in self.torch_optimizer.param_groups for p in group["params"]]
        self.hooks = StageHooks.of(trainer.callbacks)

    def _eval_step(self, batch: Batch, split: str) -> torch.Tensor:
        x, y = batch
        logits = self.evaluate(x)
        self.stats[split].add(logits, y)
        return logits

    def evaluate(self, x: torch.Tensor, model: nn.Module | None = None) -> torch.Tensor:
        """The logits of an evaluation batch, by the module's model or by ``model`` (a weight average of it)."""
        return (self.model if model is None else model)(x)

    def eval_metrics(self) -> EvalMetrics:
        """A fresh accumulator of an evaluation epoch's metrics."""
        return EvalMetrics()

    def record(self, metrics: dict[str, torch.Tensor | float], prog_bar: bool = False) -> None:
        """Record an epoch's metrics (``metrics.log_epoch``)."""
        log_epoch(self.trainer, metrics, prog_bar)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        """Returns the logits, for callbacks that keep the test predictions."""
        return self._eval_step(batch, "test")

    def on_train_epoch_start(self) -> None:
        self.stats["train"] = EpochStats()
        self.epoch_grad_norms = []
        self.epoch_lr = self.trainer.optimizers[0].param_groups[0]["lr"]  # the rate this epoch starts with

    def on_train_epoch_end(self) -> None:
        """Log the epoch's training metrics, then step a per-epoch schedule (validation has run by now)."""
        metrics = self.stats["train"].compute("train")
        metrics["lr"] = float(self.epoch_lr)
        if self.epoch_grad_norms:
            metrics["grad_norm"] = _mean_of_taken_steps(torch.cat(self.epoch_grad_norms), self.scaler)
        self.record(metrics)
        if self.schedule is not None:
            self.schedule.after_epoch(self.trainer.callback_metrics, self.validated_epoch == self.current_epoch)

    def on_validation_epoch_start(self) -> None:
        self.stats["val"] = self.eval_metrics()

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.record(self.stats["val"].compute("val"), prog_bar=True)
            self.validated_epoch = self.current_epoch

    def on_test_epoch_start(self) -> None:
        self.stats["test"] = self.eval_metrics()

    def on_test_epoch_end(self) -> None:
        self.record(self.stats["test"].compute("test"))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """torch's random state (dropout masks), so that a resumed run draws what an uninterrupted one would."""
        checkpoint[RANDOM_STATE] = {"cpu": torch.get_rng_state(),
                                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(RANDOM_STATE)
        if state is not None:
            torch.set_rng_state(state["cpu"])
            if state["cuda"] and torch.cuda.is_initialized():
                torch.cuda.set_rng_state_all(state["cuda"])

    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self.model, self.tricks.optimizer)
        total_steps = steps_per_epoch(self.trainer) * self.trainer.max_epochs
        self.schedule = build_schedule(optimizer, self.tricks.scheduler, self.trainer.max_epochs, total_steps)
        return optimizer if self.schedule is None else {"optimizer": optimizer,
                                                        "lr_scheduler": self.schedule.lightning_config()}


def _mean_of_taken_steps(norms: torch.Tensor, scaler: torch.amp.GradScaler | None) -> torch.Tensor:
    """Mean ‖g‖₂ of the epoch's steps (per member in a pack: ``norms`` is (steps, K)); under a gradient scaler, of
    the steps it took (non-finite gradients are its signal to skip a step and lower the scale, not a divergence)."""
    if scaler is None:
        return norms.mean(0)
    taken = torch.isfinite(norms)
    return torch.where(taken, norms, 0).sum() / taken.sum().clamp(min=1)
