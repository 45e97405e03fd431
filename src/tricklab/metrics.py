"""Epoch metrics: accumulated on the device batch by batch, logged once an epoch at the optimizer step."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from tricklab.calibration import ECE_BINS


class EpochStats:
    """Running sums Σ n_b·L_b and Σ correct_b over batches b, and the sample count, as device tensors (no sync).

    For a fused pack every tensor has a leading member dimension (losses (K,), logits (K, B, C), targets (K, B)),
    and the sums come one per member.
    """

    def __init__(self) -> None:
        self.loss_sums: list[torch.Tensor] = []
        self.correct: list[torch.Tensor] = []
        self.count = 0

    def add(self, losses: list[torch.Tensor], logits: list[torch.Tensor], targets: list[torch.Tensor]) -> None:
        """Add batches: their mean losses L_b, logits and targets (reduced together: a few ops, not a few a batch)."""
        sizes = [y.shape[-1] for y in targets]
        weights = torch.tensor(sizes, device=losses[0].device, dtype=torch.float32)
        stacked = torch.stack(losses).float()
        self.loss_sums.append((stacked * weights.view(-1, *[1] * (stacked.dim() - 1))).sum(0))
        self.correct.append((torch.cat(logits, dim=-2).argmax(-1) == torch.cat(targets, dim=-1)).sum(-1))
        self.count += sum(sizes)

    def compute(self, prefix: str) -> dict[str, torch.Tensor | float]:
        """Sample-weighted mean loss Σ n_b·L_b / Σ n_b and accuracy so far, as ``<prefix>/loss``, ``<prefix>/acc``
        (plain zeros before any batch)."""
        if not self.count:
            return {f"{prefix}/loss": 0.0, f"{prefix}/acc": 0.0}
        return {f"{prefix}/loss": torch.stack(self.loss_sums).sum(0) / self.count,
                f"{prefix}/acc": torch.stack(self.correct).sum(0) / self.count}


class EvalMetrics:
    """An evaluation epoch's loss (the mean NLL −log p(y|x), sample-weighted), accuracy and expected calibration
    error (``tricklab.calibration``), accumulated by torchmetrics (which also syncs them across processes)."""

    def __init__(self) -> None:
        # Made at the first batch, which tells the number of classes and the device.
        self.metrics: torch.nn.ModuleDict | None = None

    def add(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        if self.metrics is None:
            self.metrics = _eval_metrics(logits.shape[1]).to(logits.device)
        loss = F.cross_entropy(logits.float(), targets)
        self.metrics["loss"].update(loss, weight=len(targets))
        self.metrics["acc"].update(logits, targets)
        self.metrics["ece"].update(logits.float().softmax(1), targets)

    def compute(self, prefix: str) -> dict[str, torch.Tensor | float]:
        """``<prefix>/loss``, ``<prefix>/acc``, ``<prefix>/ece`` (plain zeros before any batch)."""
        if self.metrics is None:
            return {f"{prefix}/{name}": 0.0 for name in ("loss", "acc", "ece")}
        return {f"{prefix}/{name}": metric.compute() for name, metric in self.metrics.items()}


def _eval_metrics(num_classes: int) -> torch.nn.ModuleDict:
    from torchmetrics import MeanMetric
    from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError

    return torch.nn.ModuleDict({"loss": MeanMetric(), "acc": MulticlassAccuracy(num_classes, average="micro"),
                       "ece": MulticlassCalibrationError(num_classes, n_bins=ECE_BINS, norm="l1")})


def log_epoch(trainer: pl.Trainer, metrics: dict[str, torch.Tensor | float], prog_bar: bool = False) -> None:
    """Record metrics already reduced over an epoch: averaged over processes, sent to every logger at step
    ``trainer.global_step`` (optimizer steps; with ``epoch``, 1-based: ``logged_epoch``), and put where
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
        logger.log_metrics({**numbers, "epoch": logged_epoch(trainer)}, step=trainer.global_step)
        logger.save()


def logged_epoch(trainer: pl.Trainer) -> int:
    """The epoch metrics belong to, 1-based as history.csv, the checkpoints' names and the progress bar count it:
    while fitting, the one running (Lightning's ``current_epoch`` counts from 0); after it (testing), the last
    one trained. Lightning's own ``epoch`` would be 0-based, so every logger is given this one."""
    return trainer.current_epoch + (trainer.state.fn == "fit")


def steps_per_epoch(trainer: pl.Trainer) -> int:
    """Optimizer steps per training epoch: Lightning counts batches, and a TensorDataModule batch holds several."""
    datamodule = trainer.datamodule
    if hasattr(datamodule, "train_steps_per_epoch"):
        return datamodule.train_steps_per_epoch()
    return int(trainer.estimated_stepping_batches) // max(1, trainer.max_epochs)
