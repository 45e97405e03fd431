"""The divergence guard: NaN losses or gradients and exploding losses stop the run with status diverged."""

from __future__ import annotations

import json

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tricklab.callbacks.divergence import DivergenceGuard


class NaNAtStep(pl.LightningModule):
    """A linear classifier whose loss turns NaN at optimizer step ``bad_step``."""

    def __init__(self, bad_step: int) -> None:
        super().__init__()
        self.model, self.bad_step = nn.Linear(3, 2), bad_step

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.model(x), y)
        return loss * float("nan") if self.global_step == self.bad_step else loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(module: pl.LightningModule, guard: DivergenceGuard) -> pl.Trainer:
    data = DataLoader(TensorDataset(torch.randn(64, 3), torch.randint(0, 2, (64,))), batch_size=8)
    trainer = pl.Trainer(max_epochs=5, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[guard])
    trainer.fit(module, train_dataloaders=data)
    return trainer


def test_forced_nan_stops_training_at_its_step():
    guard = DivergenceGuard()
    trainer = _fit(NaNAtStep(bad_step=3), guard)
    assert guard.diverged_at_step == 3
    assert guard.reason == "non-finite gradient"
    assert trainer.global_step == 4  # stopped after that step, not at the end of the 5 epochs (40 steps)


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
