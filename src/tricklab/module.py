"""The LightningModule: cross-entropy classification with the run's optimizer, schedule, clipping and penalty.

It optimizes manually. A training batch is a run of minibatches (``StepBatches``, or one plain ``(x, y)``);
each minibatch is one optimizer step: forward, loss (+ L1/L2 penalty), backward, then inside the optimizer's
step its pre-hooks (here: ‖g‖₂ before clipping, then clipping; callbacks' diagnostics run before it), the
update, its post-hooks (weight averaging, diagnostics), and the per-step schedule. Per-step work belongs in
torch's optimizer step hooks: in plain fp32 on one device, backward and step are torch's own calls, without
Lightning's per-step hook dispatch (``on_before_backward``, ``on_after_backward``, ``on_before_optimizer_step``:
~0.06 ms a step, 5% of a small MLP's step on a CPU). Under a gradient scaler or DDP, Lightning's
``manual_backward`` and optimizer step run instead, so scaling and gradient sync stay Lightning's.

Metrics are accumulated on the device and logged once per epoch (train/*, val/*, test/*, lr, grad_norm) by
``log_epoch``, at the optimizer step.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.core.optimizer import LightningOptimizer
from pytorch_lightning.strategies import SingleDeviceStrategy
from torch import nn

from tricklab.data.batches import Batch, StepBatches, minibatches
from tricklab.tricks.optim import build_optimizer
from tricklab.tricks.regularization import penalized_weights, penalty
from tricklab.tricks.schedule import Schedule, build_schedule


class EpochStats:
    """Running sums Σ n_b·L_b and Σ correct_b over batches b, and the sample count, as device tensors (no sync)."""

    def __init__(self) -> None:
        self.loss_sums: list[torch.Tensor] = []
        self.correct: list[torch.Tensor] = []
        self.count = 0

    def add(self, losses: list[torch.Tensor], logits: list[torch.Tensor], targets: list[torch.Tensor]) -> None:
        """Add batches: their mean losses L_b, logits and targets (reduced together: a few ops, not a few a batch)."""
        sizes = [len(y) for y in targets]
        weights = torch.tensor(sizes, device=losses[0].device, dtype=torch.float32)
        self.loss_sums.append((torch.stack(losses).float() * weights).sum())
        self.correct.append((torch.cat(logits).argmax(1) == torch.cat(targets)).sum())
        self.count += sum(sizes)

    def compute(self, prefix: str) -> dict[str, torch.Tensor | float]:
        """Sample-weighted mean loss Σ n_b·L_b / Σ n_b and accuracy so far, as ``<prefix>/loss``, ``<prefix>/acc``
        (plain zeros before any batch)."""
        if not self.count:
            return {f"{prefix}/loss": 0.0, f"{prefix}/acc": 0.0}
        return {f"{prefix}/loss": torch.stack(self.loss_sums).sum() / self.count,
                f"{prefix}/acc": torch.stack(self.correct).sum() / self.count}


class ClassifierModule(pl.LightningModule):
    """``model`` trained with cross-entropy; configs are plain dicts so checkpoints stay portable.

    ``step_losses`` (a list) and ``step_grad_norms`` (a tensor; empty unless ``norms_needed``) hold the current
    training batch's per-step loss and ‖g‖₂ (before clipping) on the device, for callbacks that check every step
    at the batch's end (``DivergenceGuard``). ``track_grad_norm``: compute ‖g‖₂ every step and log its epoch mean
    as ``grad_norm`` (one more pass over the gradients a step: ~3% of the default MLP's step on a CPU).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any],
        regularization: dict[str, Any] | None = None,
        clip: dict[str, Any] | None = None,
        track_grad_norm: bool = False,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.model = model
        self.save_hyperparameters(ignore=["model"])
        reg = regularization or {}
        self.l1, self.l2 = float(reg.get("l1", 0.0)), float(reg.get("l2", 0.0))
        self.clip = clip or {"name": "none"}
        # ‖g‖₂ every step (for grad_norm and the divergence guard's gradient check), also computed to clip by norm
        self.norms_needed = track_grad_norm or self.clip["name"] == "norm"
        self.schedule: Schedule | None = None
        self.stats = {"train": EpochStats(), "val": EpochStats(), "test": EpochStats()}
        self.step_losses: list[torch.Tensor] = []
        self.step_grad_norms = torch.zeros(0)
        self.epoch_grad_norms: list[torch.Tensor] = []  # step_grad_norms of each batch of the epoch
        self._norm_parts: list[list[torch.Tensor]] = []  # per step of the batch: ‖g_j‖₂ per parameter tensor
        self._clip_hook: torch.utils.hooks.RemovableHandle | None = None
        self._plain_steps = False
        self._validated_epoch = -1  # the last epoch that ran validation
        self._params: list[nn.Parameter] = []  # the optimizer's parameters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: StepBatches | Batch, batch_idx: int) -> None:
        """One optimizer step per minibatch; the batch's metrics are reduced once, after its last step (its
        logits are kept until then)."""
        optimizer = self.optimizers()
        losses, logits_seen, targets = [], [], []
        for x, y in minibatches(batch):
            logits = self.model(x)
            loss = F.cross_entropy(logits, y)
            losses.append(loss.detach())
            logits_seen.append(logits.detach())
            targets.append(y)
            if self.l1 or self.l2:
                loss = loss + penalty(penalized_weights(self.model), self.l1, self.l2)
            self._optimize(optimizer, loss)
        self.step_losses = losses
        self.stats["train"].add(losses, logits_seen, targets)
        self._reduce_grad_norms()

    def _optimize(self, optimizer: LightningOptimizer, loss: torch.Tensor) -> None:
        """One optimizer step on ``loss``, then the per-step schedule."""
        optimizer.optimizer.zero_grad(set_to_none=True)
        if self._plain_steps:
            loss.backward()
            # What LightningOptimizer.step does around the update: count the step (trainer.global_step).
            optimizer._on_before_step()
            optimizer.optimizer.step()
            optimizer._on_after_step()
        else:
            self.manual_backward(loss)
            optimizer.step()
        if self.schedule is not None and self.schedule.interval == "step":
            self.schedule.scheduler.step()

    def _norm_and_clip(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        """Optimizer step pre-hook: keep ‖g_j‖₂ of each parameter tensor j (reduced per batch to
        ‖g‖₂ = √Σ_j ‖g_j‖₂², before clipping), then clip (norm: g ← g·min(1, θ/‖g‖₂); value: g_i ← clamp(g_i, ±θ))."""
        params = [p for p in self._params if p.grad is not None]
        if not params:
            return
        if self.norms_needed:
            parts = torch._foreach_norm([p.grad for p in params])  # one kernel; torch's clip_grad_norm_ uses it
            self._norm_parts.append(parts)
        if self.clip["name"] == "norm":
            norm = torch.linalg.vector_norm(torch.stack(parts))
            torch.nn.utils.clip_grads_with_norm_(params, self.clip["max_norm"], norm)
        elif self.clip["name"] == "value":
            torch.nn.utils.clip_grad_value_(params, self.clip["max_value"])

    def _reduce_grad_norms(self) -> None:
        """‖g‖₂ of each step of this batch from the per-tensor norms, in one go rather than a few ops a step."""
        parts, self._norm_parts = self._norm_parts, []
        if not parts:
            self.step_grad_norms = torch.zeros(0)
            return
        step_of = torch.repeat_interleave(torch.arange(len(parts)), torch.tensor([len(p) for p in parts]))
        squares = torch.stack([n for step in parts for n in step]).float().square()
        totals = torch.zeros(len(parts), device=squares.device).index_add_(0, step_of.to(squares.device), squares)
        self.step_grad_norms = totals.sqrt()
        self.epoch_grad_norms.append(self.step_grad_norms)

    def on_train_start(self) -> None:
        # One device and no gradient scaler: backward and step need none of Lightning's wrapping.
        trainer = self.trainer
        self._plain_steps = (type(trainer.strategy) is SingleDeviceStrategy
                             and getattr(trainer.precision_plugin, "scaler", None) is None)
        # Registered here, after callbacks' on_train_start: their pre-hooks see the gradients before clipping.
        optimizer = trainer.optimizers[0]
        self._params = [p for group in optimizer.param_groups for p in group["params"]]
        if self.norms_needed or self.clip["name"] != "none":
            self._clip_hook = optimizer.register_step_pre_hook(self._norm_and_clip)

    def on_train_end(self) -> None:
        if self._clip_hook is not None:
            self._clip_hook.remove()
            self._clip_hook = None

    def _eval_step(self, batch: Batch, split: str) -> torch.Tensor:
        x, y = batch
        logits = self.model(x)
        self.stats[split].add([F.cross_entropy(logits, y)], [logits], [y])
        return logits

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
            metrics["grad_norm"] = torch.cat(self.epoch_grad_norms).mean()
        log_epoch(self.trainer, metrics)
        if self.schedule is not None and self.schedule.interval == "epoch":
            self._step_epoch_schedule(self.trainer.callback_metrics)

    def _step_epoch_schedule(self, metrics: dict[str, Any]) -> None:
        """Step the schedule; plateau reads its monitor, and skips epochs that did not measure it (no validation
        on that epoch)."""
        monitor = self.schedule.monitor
        if monitor is None:
            self.schedule.scheduler.step()
        elif monitor in metrics and (not monitor.startswith("val/") or self._validated_epoch == self.current_epoch):
            self.schedule.scheduler.step(float(metrics[monitor]))

    def on_validation_epoch_start(self) -> None:
        self.stats["val"] = EpochStats()

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            log_epoch(self.trainer, self.stats["val"].compute("val"), prog_bar=True)
            self._validated_epoch = self.current_epoch

    def on_test_epoch_start(self) -> None:
        self.stats["test"] = EpochStats()

    def on_test_epoch_end(self) -> None:
        log_epoch(self.trainer, self.stats["test"].compute("test"))

    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self.model, self.hparams.optimizer)
        self.schedule = build_schedule(optimizer, self.hparams.scheduler, self.trainer.max_epochs,
                                       self._total_steps())
        return optimizer if self.schedule is None else {"optimizer": optimizer,
                                                        "lr_scheduler": self.schedule.lightning_config()}

    def _total_steps(self) -> int:
        """Optimizer steps of the whole run."""
        return steps_per_epoch(self.trainer) * self.trainer.max_epochs


def log_epoch(trainer: pl.Trainer, metrics: dict[str, torch.Tensor | float], prog_bar: bool = False) -> None:
    """Record metrics already reduced over an epoch: averaged over processes, sent to every logger at step
    ``trainer.global_step`` (optimizer steps; with ``epoch``, 0-based as Lightning logs it), and put where
    callbacks and the progress bar read them (``trainer.callback_metrics``, ``trainer.progress_bar_metrics``).

    Lightning's ``self.log`` would log them at its count of training batches, not of optimizer steps (a batch
    here holds several steps), and costs ~0.4 ms a key (it walks its metric object on every call): 4% of the
    default run's epoch.
    """
    device = trainer.strategy.root_device
    names = list(metrics)
    values = torch.stack([torch.as_tensor(metrics[name], device=device).float() for name in names])
    values = trainer.strategy.reduce(values, reduce_op="mean")  # the identity on one device
    trainer.callback_metrics.update(zip(names, values.unbind(), strict=True))
    numbers = dict(zip(names, values.tolist(), strict=True))
    if prog_bar:
        trainer.progress_bar_metrics.update(numbers)
    for logger in trainer.loggers:
        logger.log_metrics({**numbers, "epoch": trainer.current_epoch}, step=trainer.global_step)
        logger.save()


def steps_per_epoch(trainer: pl.Trainer) -> int:
    """Optimizer steps per training epoch: Lightning counts batches, and a TensorDataModule batch holds several."""
    datamodule = trainer.datamodule
    if hasattr(datamodule, "train_steps_per_epoch"):
        return datamodule.train_steps_per_epoch()
    return int(trainer.estimated_stepping_batches) // max(1, trainer.max_epochs)
