"""Epoch metrics: accumulated on the device batch by batch, logged once an epoch at the optimizer step."""

from __future__ import annotations

import pytorch_lightning as pl
import torch


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


def log_epoch(trainer: pl.Trainer, metrics: dict[str, torch.Tensor | float], prog_bar: bool = False) -> None:
    """Record metrics already reduced over an epoch: averaged over processes, sent to every logger at step
    ``trainer.global_step`` (optimizer steps; with ``epoch``, 0-based as Lightning logs it), and put where
    callbacks and the progress bar read them (``trainer.callback_metrics``, ``trainer.progress_bar_metrics``).

    Not ``self.log``: Lightning would log them at its count of training batches, and a batch here holds several
    optimizer steps (``trainer.steps_per_call``).
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
