"""Learning-rate schedules, each stepped after every optimizer step or after every epoch (validation included).

- exponential: lr_t = lr_0·γ^t (epochs)          - step: lr_0·γ^⌊t/step_size⌋, or ×γ at each milestone (epochs)
- cosine: η_min + (lr_0-η_min)(1+cos(πt/T))/2     - plateau: lr·factor after `patience` flat epochs
- onecycle (steps): warm-up to lr_0, cosine down  - warmup_cosine (steps): linear warm-up, then cosine

SWA's learning-rate phase (``swa_schedule``) replaces the run's schedule from the SWA start on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import lr_scheduler
from torch.optim.swa_utils import SWALR

from tricklab.choices import pick


@dataclass
class Schedule:
    """A torch scheduler, when it steps (``interval``: "epoch" or "step") and, for plateau, the metric it reads."""

    scheduler: lr_scheduler.LRScheduler | lr_scheduler.ReduceLROnPlateau
    interval: str
    monitor: str | None = None

    def lightning_config(self) -> dict[str, Any]:
        """What ``configure_optimizers`` hands Lightning, which saves and restores the scheduler's state (the
        module steps it itself, by the two methods below: it optimizes manually)."""
        return {"scheduler": self.scheduler, "interval": self.interval}

    def after_optimizer_step(self) -> None:
        """Step a per-step schedule (onecycle, warmup_cosine)."""
        if self.interval == "step":
            self.scheduler.step()

    def after_epoch(self, metrics: Mapping[str, Any], validated: bool) -> None:
        """Step a per-epoch schedule. Plateau reads its monitor, and skips an epoch that did not measure it (a
        val/ metric on an epoch without validation: stepping on the stale value would count it twice)."""
        if self.interval != "epoch":
            return
        if self.monitor is None:
            self.scheduler.step()
        elif self.monitor in metrics and (validated or not self.monitor.startswith("val/")):
            self.scheduler.step(float(metrics[self.monitor]))


def _exponential(optimizer: torch.optim.Optimizer, cfg: dict[str, Any], max_epochs: int, total_steps: int
                 ) -> Schedule:
    return Schedule(lr_scheduler.ExponentialLR(optimizer, gamma=cfg["gamma"]), "epoch")


def _step(optimizer: torch.optim.Optimizer, cfg: dict[str, Any], max_epochs: int, total_steps: int) -> Schedule:
    if cfg.get("milestones"):  # ×γ after each listed epoch (He et al. 2016: at 50% and 75% of the run)
        return Schedule(lr_scheduler.MultiStepLR(optimizer, milestones=list(cfg["milestones"]), gamma=cfg["gamma"]),
                        "epoch")
    return Schedule(lr_scheduler.StepLR(optimizer, step_size=cfg["step_size"], gamma=cfg["gamma"]), "epoch")


def _cosine(optimizer: torch.optim.Optimizer, cfg: dict[str, Any], max_epochs: int, total_steps: int) -> Schedule:
    return Schedule(lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_epochs, eta_min=cfg["eta_min"]), "epoch")


def _plateau(optimizer: torch.optim.Optimizer, cfg: dict[str, Any], max_epochs: int, total_steps: int) -> Schedule:
    sched = lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=cfg["mode"], factor=cfg["factor"], patience=cfg["patience"], min_lr=cfg["min_lr"]
    )
    return Schedule(sched, "epoch", monitor=cfg["monitor"])


def _onecycle(optimizer: torch.optim.Optimizer, cfg: dict[str, Any], max_epochs: int, total_steps: int) -> Schedule:
    sched = lr_scheduler.OneCycleLR(
        optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total_steps,
        pct_start=cfg["pct_start"], div_factor=cfg["div_factor"], final_div_factor=cfg["final_div_factor"],
    )
    return Schedule(sched, "step")


def _warmup_cosine(optimizer: torch.optim.Optimizer, cfg: dict[str, Any], max_epochs: int, total_steps: int
                   ) -> Schedule:
    warmup = max(1, round(cfg["warmup_fraction"] * total_steps))
    decay = max(1, total_steps - warmup)
    sched = lr_scheduler.SequentialLR(
        optimizer,
        [
            lr_scheduler.LinearLR(optimizer, start_factor=cfg["start_factor"], total_iters=warmup),
            lr_scheduler.CosineAnnealingLR(optimizer, T_max=decay, eta_min=cfg["eta_min"]),
        ],
        milestones=[warmup],
    )
    return Schedule(sched, "step")


# name -> its schedule(optimizer, cfg, max_epochs, total_steps); None: a constant learning rate
SCHEDULES: dict[str, Callable[[torch.optim.Optimizer, dict[str, Any], int, int], Schedule | None]] = {
    "none": lambda optimizer, cfg, max_epochs, total_steps: None,
    "exponential": _exponential,
    "step": _step,
    "cosine": _cosine,
    "onecycle": _onecycle,
    "plateau": _plateau,
    "warmup_cosine": _warmup_cosine,
}


def build_schedule(
    optimizer: torch.optim.Optimizer, cfg: dict[str, Any], max_epochs: int, total_steps: int
) -> Schedule | None:
    """The schedule for ``cfg['name']``, or None for a constant learning rate; ``total_steps`` = optimizer steps
    of the whole run (onecycle, warmup_cosine)."""
    return pick(SCHEDULES, "scheduler", cfg["name"])(optimizer, cfg, max_epochs, total_steps)


def swa_schedule(optimizer: torch.optim.Optimizer, swa_lr: float | None, anneal_epochs: int,
                 anneal_strategy: str) -> Schedule:
    """SWA's phase (Izmailov et al. 2018; torch's SWALR), stepped per epoch: each group's lr goes from its value now,
    lr_s, to swa_lr as lr_j = lr_s + α(min(1, j/anneal_epochs))·(swa_lr − lr_s) in the phase's epoch j (α(u) = u for
    linear, (1 − cos πu)/2 for cos), then stays; ``swa_lr`` None: lr_s, held constant."""
    target = [group["lr"] for group in optimizer.param_groups] if swa_lr is None else swa_lr
    return Schedule(SWALR(optimizer, target, anneal_epochs, anneal_strategy), "epoch")

