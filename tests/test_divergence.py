"""The divergence guard: NaN losses or gradients and exploding losses stop the run with status diverged."""

from __future__ import annotations

import json

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from tricklab.callbacks.divergence import DivergenceGuard
from tricklab.data.batches import IndexBatches
from tricklab.module import ClassifierModule
from tricklab.tricks.step import build_step_tricks


class NaNAtCall(nn.Module):
    """A linear classifier whose output turns NaN at its ``bad_call``-th forward pass (0-based)."""

    def __init__(self, bad_call: int) -> None:
        super().__init__()
        self.linear, self.bad_call, self.calls = nn.Linear(3, 2), bad_call, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)
        self.calls += 1
        return out * float("nan") if self.calls - 1 == self.bad_call else out


@pytest.mark.parametrize(("steps_per_call", "grad_norm", "reason"), [
    (None, True, "non-finite gradient"), (8, True, "non-finite gradient"), (8, False, "non-finite loss")])
def test_forced_nan_stops_training_at_its_step(steps_per_call, grad_norm, reason):
    """Checked at the end of each training batch, the guard still names the exact step inside it; it sees the
    gradients when the module computes their norm."""
    guard = DivergenceGuard()
    module = ClassifierModule(NaNAtCall(bad_call=3), build_step_tricks(
        {"optimizer": {"name": "sgd", "lr": 0.1, "weight_decay": 0.0}, "callbacks": {"grad_norm": grad_norm}}))
    data = IndexBatches(torch.randn(64, 3), torch.randint(0, 2, (64,)), 8, shuffle=True,
                        steps_per_call=steps_per_call)
    trainer = pl.Trainer(max_epochs=5, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[guard])
    trainer.fit(module, train_dataloaders=data)
    assert guard.diverged_at_step == 3
    assert guard.reason == reason
    # stopped after the batch holding that step, not at the end of the 5 epochs (40 steps)
    assert trainer.global_step == (4 if steps_per_call is None else 8)


def test_loss_growing_past_the_factor_counts_as_divergence(run_training, tmp_path):
    metrics = run_training(["optimizer.lr=1e6", "trainer.max_epochs=3", "data.subset=500"])
    assert metrics["status"] == "diverged"
    assert metrics["diverged_at_step"] is not None and metrics["diverged_at_step"] < metrics["steps"]
    assert metrics["epochs"] == 1
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk["status"] == "diverged" and on_disk["diverged_at_step"] == metrics["diverged_at_step"]
    assert on_disk["diverged_reason"]


def test_the_reference_loss_survives_a_checkpoint():
    guard = DivergenceGuard(max_loss_factor=10)
    guard.initial_loss = 2.3
    resumed = DivergenceGuard(max_loss_factor=10)
    resumed.load_state_dict(guard.state_dict())
    assert resumed.initial_loss == 2.3


@pytest.mark.parametrize("every_n_steps", [1, 25])
def test_a_run_diverging_with_diagnostics_and_histograms_on_is_diverged_not_failed(run_training, every_n_steps):
    """The per-layer diagnostics (and W&B histograms) meet the NaN activations of a diverging step before the
    guard's once-per-call check: the run is still a divergence."""
    metrics = run_training(["optimizer=sgd", "optimizer.lr=1e9", "diagnostics=on",
                            f"diagnostics.every_n_steps={every_n_steps}", "logger=wandb", "logger.mode=offline",
                            "data.subset=3000", "trainer.max_epochs=2"])
    assert metrics["status"] == "diverged", metrics.get("error")
    assert metrics["diverged_at_step"] is not None and metrics["diverged_reason"]
