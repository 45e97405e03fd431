"""Per-layer diagnostics: what the activations and gradients of every weight layer do as training goes.

Every ``every_n_steps`` optimizer steps, for each weight layer l (Linear/Conv, in forward order) it records

- of the activation a_l that follows the layer (the output of the first activation module after it; for the
  last layer, which has none, its output = the logits): mean, std (over all entries of the batch),
  ``dead_frac`` (ReLU: share of units, i.e. features/channels, that are 0 for every example and position) or
  ``saturated_frac`` (tanh: share of entries with |a| > 0.99; sigmoid: a < 0.01 or a > 0.99);
- of its weights W_l (every parameter of the layer but the bias; under weight norm, g and v): ‖W_l‖, the
  gradient norm ‖∂L/∂W_l‖ (before clipping) and the update ratio ‖ΔW_l‖/‖W_l‖ of that optimizer step.

Rows go to ``layers.csv`` (one per step × layer) and to the run's loggers (line plots; W&B histograms). Forward
hooks exist only during a diagnosed step's forward pass, so the other steps cost one integer test a stage.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger
from torch import nn

from tricklab.models.layers import ACTIVATION_LAYERS
from tricklab.stages import CallSteps, StepCallback
from tricklab.tricks.norm import WEIGHT_LAYERS

COLUMNS = ("step", "epoch", "layer", "name", "type", "activation", "act_mean", "act_std", "dead_frac",
           "saturated_frac", "weight_norm", "grad_norm", "update_ratio")
HISTOGRAM_VALUES = 10_000  # at most this many entries of a tensor go into a W&B histogram
Samples = dict[tuple[int, str], "torch.Tensor | None"]  # (layer index, activation|gradient) -> entries
ACTIVATION_NAMES = {cls: name for name, cls in ACTIVATION_LAYERS.items()}


def activation_stats(a: torch.Tensor, activation: str | None) -> dict[str, torch.Tensor]:
    """Mean, std, and dead (ReLU) or saturated (tanh, sigmoid) fraction of a batch of activations (N, C, ...)."""
    a = a.detach().float()
    stats = {"act_mean": a.mean(), "act_std": a.std()}
    if activation == "relu":
        alive = (a.transpose(0, 1).reshape(a.shape[1], -1) > 0).any(dim=1)
        stats["dead_frac"] = 1 - alive.float().mean()
    elif activation == "tanh":
        stats["saturated_frac"] = (a.abs() > 0.99).float().mean()
    elif activation == "sigmoid":
        stats["saturated_frac"] = ((a < 0.01) | (a > 0.99)).float().mean()
    return stats


def _gradient_sample(probe: LayerProbe) -> torch.Tensor | None:
    """Up to HISTOGRAM_VALUES gradient entries of the layer's weights, on the CPU."""
    grads = [p.grad.detach().flatten() for p in probe.weights if p.grad is not None]
    return torch.cat(grads)[:HISTOGRAM_VALUES].float().cpu() if grads else None


def _norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t.detach().float()) for t in tensors]))


@dataclass
class LayerProbe:
    """One weight layer, the activation module that follows it (None for the output layer), what was seen."""

    index: int
    name: str
    layer: nn.Module
    activation: nn.Module | None = None
    stats: dict[str, torch.Tensor] = field(default_factory=dict)
    keep_sample: bool = False  # keep activation entries for a histogram
    sample: torch.Tensor | None = None
    before: list[torch.Tensor] = field(default_factory=list)  # weights before the optimizer step

    @property
    def weights(self) -> list[torch.Tensor]:
        return [p for name, p in self.layer.named_parameters() if not name.endswith("bias")]

    @property
    def activation_name(self) -> str | None:
        return ACTIVATION_NAMES.get(type(self.activation)) if self.activation is not None else None

    def hook(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        self.stats = activation_stats(output, self.activation_name)
        if self.keep_sample:
            self.sample = output.detach().flatten()[:HISTOGRAM_VALUES].float().cpu()


def find_probes(model: nn.Module) -> list[LayerProbe]:
    """Weight layers in registration (= forward, for the sequential architectures) order, each paired with the
    first activation module registered after it and before the next weight layer."""
    probes: list[LayerProbe] = []
    for name, module in model.named_modules():
        if isinstance(module, WEIGHT_LAYERS):
            probes.append(LayerProbe(len(probes), name.removeprefix("model."), module))
        elif isinstance(module, tuple(ACTIVATION_LAYERS.values())) and probes and probes[-1].activation is None:
            probes[-1].activation = module
    return probes


class LayerDiagnostics(StepCallback):
    """Records the per-layer statistics above every ``every_n_steps`` steps (step 0 included), in the stages of
    ClassifierModule's step: activations in the forward pass, weight and gradient norms after backward (before
    clipping), update ratios after the update. Rows are written after the training call (one host sync).
    """

    def __init__(self, path: Path, every_n_steps: int, histograms: bool = True) -> None:
        self.path, self.every_n_steps, self.histograms = Path(path), every_n_steps, histograms
        self.probes: list[LayerProbe] = []
        self.handles: list[torch.utils.hooks.RemovableHandle] = []  # forward hooks of the diagnosed step
        self.pending: list[tuple[int, int, list[dict[str, Any]], Samples]] = []  # steps not yet written

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.probes = find_probes(pl_module)
        if trainer.is_global_zero:
            self._start_file(trainer.global_step)

    def _diagnosed(self, step: int) -> bool:
        return step % self.every_n_steps == 0

    def before_forward(self, trainer: pl.Trainer, step: int, model: nn.Module) -> None:
        """Watch the activations of this forward pass, if the step is a diagnosed one."""
        if not self._diagnosed(step):
            return
        keep = self.histograms and self._wandb(trainer) is not None
        for probe in self.probes:
            probe.stats, probe.sample, probe.keep_sample = {}, None, keep
            target = probe.activation if probe.activation is not None else probe.layer
            self.handles.append(target.register_forward_hook(probe.hook))

    def after_backward(self, trainer: pl.Trainer, step: int, model: nn.Module) -> None:
        """Weight and gradient norms (before clipping), and a copy of the weights for the update ratio."""
        if not self._diagnosed(step):
            return
        self._remove_hooks()
        for probe in self.probes:
            grads = [p.grad for p in probe.weights if p.grad is not None]
            probe.stats["weight_norm"] = _norm(probe.weights)
            if grads:
                probe.stats["grad_norm"] = _norm(grads)
            probe.before = [p.detach().clone() for p in probe.weights]

    def after_update(self, trainer: pl.Trainer, step: int, model: nn.Module) -> None:
        """Update ratios ‖ΔW_l‖/‖W_l‖; the step's statistics wait, as tensors, for ``after_steps``."""
        if not self._diagnosed(step):
            return
        for probe in self.probes:
            if probe.before:
                delta = [p.detach() - b for p, b in zip(probe.weights, probe.before, strict=True)]
                probe.stats["update_ratio"] = _norm(delta) / probe.stats["weight_norm"]
                probe.before = []
        samples = {(probe.index, "activation"): probe.sample for probe in self.probes}
        samples.update({(probe.index, "gradient"): _gradient_sample(probe) for probe in self.probes
                        if probe.keep_sample})
        self.pending.append((step, trainer.current_epoch, [dict(probe.stats) for probe in self.probes], samples))

    def after_steps(self, trainer: pl.Trainer, steps: CallSteps) -> None:
        """The rows of the call's diagnosed steps, to layers.csv and the loggers."""
        pending, self.pending = self.pending, []
        if not trainer.is_global_zero:
            return
        for step, epoch, stats, samples in pending:
            rows = [self._row(step, epoch, probe, probe_stats) for probe, probe_stats in zip(self.probes, stats,
                                                                                              strict=True)]
            self._write(rows)
            self._log(trainer, step, rows, samples)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._remove_hooks()

    def _start_file(self, first_step: int) -> None:
        """The header, and the rows of the steps before ``first_step`` that an earlier attempt of this run wrote (a
        resumed run repeats the steps after its checkpoint: their rows are written again)."""
        kept = []
        if first_step > 0 and self.path.is_file():
            with self.path.open(newline="") as f:
                kept = [row for row in csv.DictReader(f) if int(row["step"]) < first_step]
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(kept)

    def _remove_hooks(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def _row(self, step: int, epoch: int, probe: LayerProbe, stats: dict[str, torch.Tensor]) -> dict[str, Any]:
        row = {"step": step, "epoch": epoch + 1,  # 1-based, as in history.csv
               "layer": probe.index, "name": probe.name, "type": type(probe.layer).__name__,
               "activation": probe.activation_name or "none"}
        row.update({key: float(value) for key, value in stats.items()})
        return row

    def _write(self, rows: list[dict[str, Any]]) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=COLUMNS).writerows(rows)

    def _log(self, trainer: pl.Trainer, step: int, rows: list[dict[str, Any]], samples: Samples) -> None:
        """Line plots through every logger (layers/<index>.<name>/<stat>); histograms to W&B."""
        metrics = {f"layers/{r['layer']:02d}.{r['name']}/{key}": value for r in rows for key, value in r.items()
                   if key in COLUMNS[6:]}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        wandb_logger = self._wandb(trainer)
        if wandb_logger is not None and self.histograms:
            self._log_histograms(wandb_logger, step, samples)

    def _log_histograms(self, logger: WandbLogger, step: int, samples: Samples) -> None:
        """Histograms of the finite entries (a diverging step's NaN/Inf are the divergence guard's to report)."""
        import wandb

        data: dict[str, Any] = {"trainer/global_step": step}
        for probe in self.probes:
            for kind in ("activation", "gradient"):
                sample = samples.get((probe.index, kind))
                finite = sample[torch.isfinite(sample)] if sample is not None else None
                if finite is not None and len(finite):
                    data[f"histograms/{probe.index:02d}.{probe.name}/{kind}"] = wandb.Histogram(finite.numpy())
        logger.experiment.log(data)

    @staticmethod
    def _wandb(trainer: pl.Trainer) -> WandbLogger | None:
        return next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)
