"""Weight averaging evaluated beside the raw weights: EMA and SWA on top of Lightning's ``WeightAveraging``.

Lightning's callback swaps the average θ̄ into the model for validation and copies it over θ when training ends;
here the model keeps its raw weights θ throughout (training, val/*, test/* and checkpoints' ``state_dict`` are
those of θ) and θ̄ is run on the same validation and test batches, logged as ``val_<tag>/*`` and ``test_<tag>/*``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import WeightAveraging
from torch.optim.swa_utils import get_ema_avg_fn, update_bn

from tricklab.data.batches import minibatches
from tricklab.module import EpochStats, log_epoch, steps_per_epoch

AVERAGED_STATE = "averaged_model_state"


class AveragedEvaluation(WeightAveraging):
    """Keeps θ̄ (``AveragedModel``) and evaluates it on every validation and test batch the raw model sees.

    ``refresh_bn``: recompute batch-norm statistics of θ̄ by one pass over the training set before evaluating
    (SWA: the running statistics of θ do not belong to θ̄). θ̄ is evaluated only once it has been updated.
    """

    def __init__(self, tag: str, refresh_bn: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tag, self.refresh_bn = tag, refresh_bn
        self.stats = EpochStats()
        self._bn_fresh_at = -1  # the update count θ̄ had when its batch-norm statistics were last recomputed
        self._step_hook: torch.utils.hooks.RemovableHandle | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Torch's optimizer step hook fires on every step, however many steps a training batch holds.
        self._step_hook = trainer.optimizers[0].register_step_post_hook(partial(self._after_step, trainer,
                                                                                pl_module))

    def _after_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer,
                    args: Any, kwargs: Any) -> None:
        """Update θ̄ after optimizer step ``trainer.global_step`` (0-based until the step is counted), if due."""
        if self.should_update(step_idx=trainer.global_step):
            self._average_model.update_parameters(pl_module)
            self._latest_update_step = trainer.global_step + 1

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """θ̄ is updated per optimizer step by ``_after_step``, not per training batch."""

    def _ready(self) -> bool:
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def _prepare(self, trainer: pl.Trainer) -> None:
        self.stats = EpochStats()
        count = int(self._average_model.n_averaged)
        if self.refresh_bn and self._bn_fresh_at != count:
            loader = trainer.datamodule.train_dataloader() if trainer.datamodule else trainer.train_dataloader
            with torch.no_grad():
                update_bn((xy for batch in loader for xy in minibatches(batch)), self._average_model.module)
            self._bn_fresh_at = count
        self._average_model.eval()

    @torch.no_grad()
    def _evaluate_batch(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        x, y = batch
        logits = self._average_model.module(x)
        self.stats.add([F.cross_entropy(logits, y)], [logits], [y])

    def _log(self, trainer: pl.Trainer, split: str) -> None:
        log_epoch(trainer, self.stats.compute(f"{split}_{self.tag}"))

    # The raw weights stay in the model: no swapping for validation, no copying when training ends.
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._ready() and not trainer.sanity_checking:
            self._prepare(trainer)

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self._ready() and not trainer.sanity_checking:
            self._evaluate_batch(batch)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._ready() and not trainer.sanity_checking:
            self._log(trainer, "val")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Keep θ in the model (Lightning would copy θ̄ over it)."""
        if self._step_hook is not None:
            self._step_hook.remove()
            self._step_hook = None

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._ready():
            self._prepare(trainer)

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                          batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self._ready():
            self._evaluate_batch(batch)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._ready():
            self._log(trainer, "test")

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        """θ stays the checkpoint's ``state_dict``; θ̄ goes beside it."""
        if self._average_model is not None:
            checkpoint[AVERAGED_STATE] = self._average_model.state_dict()

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if self._average_model is not None and AVERAGED_STATE in checkpoint:
            self._average_model.load_state_dict(checkpoint[AVERAGED_STATE])
            self._bn_fresh_at = -1


class EMAEvaluation(AveragedEvaluation):
    """θ̄ ← decay·θ̄ + (1-decay)·θ after every optimizer step from ``start_step`` on (buffers averaged too)."""

    def __init__(self, decay: float, start_step: int = 0) -> None:
        super().__init__("ema", avg_fn=get_ema_avg_fn(decay), use_buffers=True)
        self.start_step = start_step

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and step_idx >= self.start_step


class SWAEvaluation(AveragedEvaluation):
    """θ̄ = mean of θ at the end of each epoch from epoch ⌊start_fraction·max_epochs⌋ on; BN statistics refreshed.

    The average is updated on the epoch's last optimizer step, so that epoch's validation already sees it.
    """

    def __init__(self, start_fraction: float) -> None:
        super().__init__("swa", refresh_bn=True, use_buffers=False)
        self.start_fraction = start_fraction
        self.steps_per_epoch, self.start_epoch = 1, 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.steps_per_epoch = max(1, steps_per_epoch(trainer))
        self.start_epoch = int(self.start_fraction * (trainer.max_epochs or 1))

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        if step_idx is None:
            return False
        epoch, last = divmod(step_idx + 1, self.steps_per_epoch)
        return last == 0 and epoch - 1 >= self.start_epoch


def build_averaging(cfg: dict[str, Any]) -> AveragedEvaluation | None:
    """The averaging callback for ``averaging=<name>`` (none: no callback)."""
    if cfg["name"] == "ema":
        return EMAEvaluation(cfg["decay"], cfg.get("start_step", 0))
    if cfg["name"] == "swa":
        return SWAEvaluation(cfg["start_fraction"])
    return None
