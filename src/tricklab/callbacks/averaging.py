"""Weight averaging evaluated beside the raw weights: EMA and SWA, with torch's ``AveragedModel``.

The model keeps its raw weights θ throughout (training, val/*, test/* and checkpoints' ``state_dict`` are those
of θ); the average θ̄ is updated in the step's ``after_update`` stage, run on the same validation and test
batches, and logged as ``val_<tag>/*`` and ``test_<tag>/*``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn

from tricklab.choices import pick
from tricklab.data.batches import minibatches
from tricklab.internals import foreach_lerp
from tricklab.metrics import EvalMetrics, steps_per_epoch
from tricklab.stages import StepCallback
from tricklab.tricks.schedule import Schedule, swa_schedule

AVERAGED_STATE = "averaged_model_state"
SWA_LR_STATE = "swa_lr_state"  # SWA's learning-rate schedule, once its phase has begun


class AveragedEvaluation(StepCallback):
    """Keeps θ̄ (``average``, an ``AveragedModel`` of the module's model) and evaluates it on every validation
    and test batch the raw model sees, once it has been updated.

    ``refresh_bn``: recompute batch-norm statistics of θ̄ by one pass over the training set before evaluating
    (SWA: the running statistics of θ do not belong to θ̄). ``kwargs`` go to ``AveragedModel``.
    """

    def __init__(self, tag: str, refresh_bn: bool = False, **kwargs: Any) -> None:
        self.tag, self.refresh_bn, self.kwargs = tag, refresh_bn, kwargs
        self.average: AveragedModel | None = None
        self.stats = EvalMetrics()
        self._bn_fresh_at = -1  # the update count θ̄ had when its batch-norm statistics were last recomputed

    def should_update(self, step: int) -> bool:
        """Whether θ̄ takes in θ after optimizer step ``step`` (0-based)."""
        raise NotImplementedError

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.average is None:
            self.average = AveragedModel(pl_module.model, **self.kwargs)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """θ̄ is no submodule of the module (it is not trained): move it to the device and dtype the module trains
        in (``trainer.precision=64-true`` converts the module after θ̄ was made)."""
        self.average.to(device=pl_module.device, dtype=pl_module.dtype)

    def after_update(self, trainer: pl.Trainer, step: int, model: nn.Module) -> None:
        if self.should_update(step):
            self.average.update_parameters(model)

    def _ready(self) -> bool:
        return self.average is not None and int(self.average.n_averaged) > 0

    def _prepare(self, trainer: pl.Trainer) -> None:
        self.stats = trainer.lightning_module.eval_metrics()
        count = int(self.average.n_averaged)
        if self.refresh_bn and self._bn_fresh_at != count:
            datamodule = trainer.datamodule
            loader = datamodule.fresh_train_batches() if hasattr(datamodule, "fresh_train_batches") \
                else trainer.train_dataloader
            with torch.no_grad():
                update_bn((xy for batch in loader for xy in minibatches(batch)), self.average.module)
            self._bn_fresh_at = count
        self.average.eval()

    @torch.no_grad()
    def _evaluate_batch(self, pl_module: pl.LightningModule, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        x, y = batch
        logits = pl_module.evaluate(x, self.average.module)
        self.stats.add(logits, y)

    def _log(self, trainer: pl.Trainer, split: str) -> None:
        trainer.lightning_module.record(self.stats.compute(f"{split}_{self.tag}"))

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._ready() and not trainer.sanity_checking:
            self._prepare(trainer)

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self._ready() and not trainer.sanity_checking:
            self._evaluate_batch(pl_module, batch)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._ready() and not trainer.sanity_checking:
            self._log(trainer, "val")

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._ready():
            self._prepare(trainer)

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                          batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self._ready():
            self._evaluate_batch(pl_module, batch)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._ready():
            self._log(trainer, "test")

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        """θ stays the checkpoint's ``state_dict``; θ̄ goes beside it."""
        if self.average is not None:
            checkpoint[AVERAGED_STATE] = self.average.state_dict()

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if AVERAGED_STATE in checkpoint:
            self.setup(trainer, pl_module, "fit")
            self.average.load_state_dict(checkpoint[AVERAGED_STATE])
            self._bn_fresh_at = -1


class EMAEvaluation(AveragedEvaluation):
    """θ̄ ← decay_t·θ̄ + (1-decay_t)·θ after every optimizer step from ``start_step`` on (buffers averaged too).

    θ̄ starts as a copy of θ at the first update (torch's ``AveragedModel``); ``warmup``: the t-th update after
    it (t = 0, 1, ...) uses decay_t = min(decay, (1+t)/(10+t)) (see ``warmup_ema_multi_avg_fn``), else decay.
    """

    def __init__(self, decay: float, start_step: int = 0, warmup: bool = False) -> None:
        average = warmup_ema_multi_avg_fn(decay) if warmup else get_ema_multi_avg_fn(decay)
        super().__init__("ema", multi_avg_fn=average, use_buffers=True)
        self.start_step = start_step

    def should_update(self, step: int) -> bool:
        return step >= self.start_step


def warmup_ema_multi_avg_fn(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
    """An ``AveragedModel`` ``multi_avg_fn``: the EMA update with the decay warmed up by the update count,
    decay_t = min(decay, (1+t)/(10+t)) with t = n_averaged − 1 (decay_0 = 0.1: the first averages follow θ
    closely instead of clinging to the early weights for ~1/(1-decay) steps; TensorFlow's
    ``ExponentialMovingAverage(num_updates=...)``; timm's ``ModelEmaV3`` warms up by a power law instead).

    ``n_averaged`` is the device tensor ``AveragedModel`` counts in, so the step needs no host sync.
    """

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        t = (n_averaged - 1).to(torch.float64)
        decay_t = torch.clamp((1 + t) / (10 + t), max=decay)
        if torch.is_floating_point(averaged[0]) or torch.is_complex(averaged[0]):
            foreach_lerp(averaged, current, (1 - decay_t).to(averaged[0].dtype))
        else:  # integer buffers (batch norm's step count), as torch's EMA treats them
            for p_average, p_model in zip(averaged, current, strict=True):
                p_average.copy_(p_average * decay_t + p_model * (1 - decay_t))

    return update


class SWAEvaluation(AveragedEvaluation):
    """SWA (Izmailov et al. 2018): from epoch ⌊start_fraction·max_epochs⌋ on, the learning rate follows SWA's own
    schedule (``swa_schedule``: towards ``lr`` over ``anneal_epochs`` epochs, ``anneal_strategy`` cos or linear;
    ``lr`` None: the rate at the SWA start, held) instead of the run's, and θ̄ = mean of θ at the end of each
    epoch of that phase; BN statistics refreshed for θ̄.

    The average is updated on the epoch's last optimizer step, so that epoch's validation already sees it.
    """

    def __init__(self, start_fraction: float, lr: float | None = None, anneal_epochs: int = 1,
                 anneal_strategy: str = "cos") -> None:
        super().__init__("swa", refresh_bn=True, use_buffers=False)
        self.start_fraction, self.lr = start_fraction, lr
        self.anneal_epochs, self.anneal_strategy = anneal_epochs, anneal_strategy
        self.steps_per_epoch, self.start_epoch = 1, 0
        self.lr_phase: Schedule | None = None
        self._resumed_lr_state: dict[str, Any] | None = None  # a checkpoint's, for the phase to go on from

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.steps_per_epoch = max(1, steps_per_epoch(trainer))
        self.start_epoch = int(self.start_fraction * (trainer.max_epochs or 1))

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """At the SWA start (or on resuming inside the phase) SWA's schedule takes over the module's schedule
        stage: the module steps it after each epoch in place of the run's, and reads the epoch's rate after this
        hook, so history.csv's lr column shows it."""
        if trainer.current_epoch >= self.start_epoch and self.lr_phase is None:
            self.lr_phase = swa_schedule(trainer.optimizers[0], self.lr, self.anneal_epochs, self.anneal_strategy)
            if self._resumed_lr_state is not None:
                self.lr_phase.scheduler.load_state_dict(self._resumed_lr_state)
            pl_module.schedule = self.lr_phase

    def should_update(self, step: int) -> bool:
        epoch, last = divmod(step + 1, self.steps_per_epoch)
        return last == 0 and epoch - 1 >= self.start_epoch

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if self.lr_phase is not None:
            checkpoint[SWA_LR_STATE] = self.lr_phase.scheduler.state_dict()

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(trainer, pl_module, checkpoint)
        self._resumed_lr_state = checkpoint.get(SWA_LR_STATE)


AVERAGING: dict[str, Callable[[dict[str, Any]], AveragedEvaluation | None]] = {
    "none": lambda cfg: None,
    "ema": lambda cfg: EMAEvaluation(cfg["decay"], cfg["start_step"], cfg["warmup"]),
    "swa": lambda cfg: SWAEvaluation(cfg["start_fraction"], cfg["lr"], cfg["anneal_epochs"], cfg["anneal_strategy"]),
}


def build_averaging(cfg: dict[str, Any]) -> AveragedEvaluation | None:
    """The averaging callback for ``averaging=<name>`` (none: no callback)."""
    return pick(AVERAGING, "averaging", cfg["name"])(cfg)
