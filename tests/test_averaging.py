"""EMA and SWA: the averaged weights are evaluated beside the raw ones; SWA recomputes batch-norm statistics."""

from __future__ import annotations

import csv
import math
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tricklab.callbacks.averaging import EMAEvaluation, SWAEvaluation
from tricklab.module import ClassifierModule
from tricklab.tricks.step import build_step_tricks

COMMON = ["trainer.max_epochs=2", "data.subset=500"]


def test_ema_metrics_sit_beside_the_unchanged_raw_metrics(run_training, tmp_path):
    raw = run_training(COMMON, name="raw")
    ema = run_training([*COMMON, "averaging=ema"], name="ema")
    assert ema["test"]["test/acc"] == raw["test"]["test/acc"]  # training and the raw weights are untouched
    assert set(ema["test"]) == {f"test{tag}/{m}" for tag in ("", "_ema") for m in ("loss", "acc", "ece")}
    assert ema["test"]["test_ema/loss"] != ema["test"]["test/loss"]
    rows = list(csv.DictReader((tmp_path / "ema" / "history.csv").open()))
    assert all(float(r["val_ema/acc"]) >= 0 for r in rows)
    assert ema["final"]["val_ema/acc"] == float(rows[-1]["val_ema/acc"])


def test_swa_with_batch_norm_reports_averaged_metrics(run_training):
    metrics = run_training([*COMMON, "averaging=swa", "norm=batch"])
    assert {"test_swa/loss", "test_swa/acc"} <= set(metrics["test"])
    assert 0 <= metrics["test"]["test_swa/acc"] <= 1
    assert "val_swa/acc" in metrics["final"]


def test_swa_recomputes_batch_norm_statistics_of_the_average():
    torch.manual_seed(0)
    x, y = torch.randn(64, 4) * 3 + 2, torch.randint(0, 3, (64,))
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    module = ClassifierModule(net, build_step_tricks({"optimizer": {"name": "sgd", "lr": 0.1, "weight_decay": 0.0}}))
    swa = SWAEvaluation(start_fraction=0.0)
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[swa])
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
    assert int(swa.average.n_averaged) == 2  # once per epoch
    bn = swa.average.module[1]
    assert not torch.allclose(bn.running_mean, torch.zeros(8))  # recomputed, not left at its initial 0
    with torch.no_grad():
        hidden = swa.average.module[0](x)
    torch.testing.assert_close(bn.running_mean, hidden.mean(0), rtol=1e-4, atol=1e-4)


def test_ema_with_early_stopping_tests_both_weights_of_the_best_checkpoint(run_training, tmp_path):
    metrics = run_training(["data.subset=500", "trainer.max_epochs=3", "averaging=ema",
                            "callbacks.early_stopping.enabled=true"])
    assert metrics["test_weights"] == "best"
    assert {"test/acc", "test_ema/acc"} <= set(metrics["test"])
    rows = list(csv.DictReader((tmp_path / "run" / "history.csv").open()))
    assert metrics["epochs"] == len(rows) == 3  # loading the best checkpoint did not rewind the history


def ema_after(weights: list[torch.Tensor], warmup: bool, decay: float = 0.99) -> torch.Tensor:
    """θ̄ of EMAEvaluation after taking in each of ``weights`` in turn (one update per optimizer step)."""
    net = nn.Linear(3, 1, bias=False)
    ema = EMAEvaluation(decay, warmup=warmup)
    ema.setup(None, SimpleNamespace(model=net), "fit")
    for step, w in enumerate(weights):
        with torch.no_grad():
            net.weight.copy_(w)
        ema.after_update(None, step, net)
    return ema.average.module.weight.detach()


@pytest.mark.parametrize("warmup", [True, False])
def test_ema_after_t_updates_is_the_closed_form_recursion(warmup):
    decay = 0.99
    weights = [torch.randn(1, 3, generator=torch.Generator().manual_seed(i)) for i in range(30)]
    expected = weights[0]  # the first update copies θ
    for t, w in enumerate(weights[1:]):
        d_t = min(decay, (1 + t) / (10 + t)) if warmup else decay
        expected = d_t * expected + (1 - d_t) * w
    torch.testing.assert_close(ema_after(weights, warmup, decay), expected)


def test_ema_warmup_weights_the_first_updates_towards_the_fresh_weights():
    first, fresh = torch.zeros(1, 3), torch.ones(1, 3)
    torch.testing.assert_close(ema_after([first, fresh], warmup=True), torch.full((1, 3), 0.9))  # d_0 = 0.1
    torch.testing.assert_close(ema_after([first, fresh], warmup=False), torch.full((1, 3), 0.01))  # d = 0.99
    # late in training the warmed-up decay has reached the configured one: d_t = 0.99 from t = 890 on
    late = ema_after([first] * 1000 + [fresh], warmup=True)
    torch.testing.assert_close(late, torch.full((1, 3), 0.01))


@pytest.mark.parametrize("strategy", ["linear", "cos"])
def test_the_lr_column_follows_swalr_in_the_swa_phase(run_training, tmp_path, strategy):
    """Cosine decay over 8 epochs, SWA from epoch 4 (0-based) towards 0.01 over 2 epochs: SWALR replaces the cosine
    from the rate it had reached."""
    run_training(["trainer.max_epochs=8", "data.subset=200", "optimizer=sgd", "optimizer.lr=0.1", "scheduler=cosine",
                  "averaging=swa", "averaging.start_fraction=0.5", "averaging.lr=0.01", "averaging.anneal_epochs=2",
                  f"averaging.anneal_strategy={strategy}"])
    lrs = [float(r["lr"]) for r in csv.DictReader((tmp_path / "run" / "history.csv").open())]
    cosine = [0.1 * (1 + math.cos(math.pi * e / 8)) / 2 for e in range(8)]  # eta_min 0
    alpha = (lambda u: u) if strategy == "linear" else (lambda u: (1 - math.cos(math.pi * u)) / 2)
    swa = [cosine[4] + alpha(min(1, j / 2)) * (0.01 - cosine[4]) for j in range(4)]
    assert lrs == pytest.approx(cosine[:4] + swa, rel=1e-6)
    assert lrs[5] != pytest.approx(cosine[5])  # the cosine no longer sets the rate


def test_swa_lr_null_holds_the_rate_of_the_swa_start(run_training, tmp_path):
    metrics = run_training(["trainer.max_epochs=8", "data.subset=200", "optimizer=sgd", "optimizer.lr=0.1",
                            "scheduler=exponential", "scheduler.gamma=0.5", "averaging=swa"])  # start: 0.75·8 = 6
    lrs = [float(r["lr"]) for r in csv.DictReader((tmp_path / "run" / "history.csv").open())]
    assert lrs == pytest.approx([0.1 * 0.5 ** e for e in range(6)] + [0.1 * 0.5 ** 6] * 2)
    assert metrics["final"]["lr"] == pytest.approx(0.1 * 0.5 ** 6)


def test_a_run_resumed_inside_the_swa_phase_goes_on_with_its_schedule(run_training, tmp_path, monkeypatch):
    from tricklab.module import ClassifierModule

    start_epoch = ClassifierModule.on_train_epoch_start

    def interrupted_in_epoch_6(self):
        if self.current_epoch == 5:
            raise KeyboardInterrupt
        start_epoch(self)

    overrides = ["trainer.max_epochs=8", "data.subset=200", "optimizer=sgd", "optimizer.lr=0.1", "averaging=swa",
                 "averaging.start_fraction=0.5", "averaging.lr=0.01", "averaging.anneal_epochs=2",
                 "averaging.anneal_strategy=linear", "callbacks.checkpoint.every_seconds=0"]
    monkeypatch.setattr(ClassifierModule, "on_train_epoch_start", interrupted_in_epoch_6)
    with pytest.raises(SystemExit):  # Lightning turns Ctrl-C into exit(1); the run is recorded interrupted
        run_training(overrides)
    monkeypatch.setattr(ClassifierModule, "on_train_epoch_start", start_epoch)
    metrics = run_training(overrides)  # resumed from the end of epoch 5, one step into SWALR's annealing
    assert metrics["resumed_from"] is not None and metrics["epochs"] == 8
    lrs = [float(r["lr"]) for r in csv.DictReader((tmp_path / "run" / "history.csv").open())]
    assert lrs == pytest.approx([0.1] * 5 + [0.055, 0.01, 0.01])


class EpochEndWeights(pl.Callback):
    """The model's weights at the end of each training epoch."""

    def __init__(self) -> None:
        self.weights: list[dict[str, torch.Tensor]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.weights.append({k: p.detach().clone() for k, p in pl_module.model.named_parameters()})


def test_swa_averages_the_epoch_end_weights_of_its_phase_only():
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    module = ClassifierModule(net, build_step_tricks({"optimizer": {"name": "sgd", "lr": 0.1, "weight_decay": 0.0}}))
    swa, seen = SWAEvaluation(start_fraction=0.5, lr=0.05), EpochEndWeights()
    trainer = pl.Trainer(max_epochs=6, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[swa, seen])
    trainer.fit(module, train_dataloaders=loader)
    assert int(swa.average.n_averaged) == 3  # epochs 3, 4, 5 (0-based)
    for name, averaged in swa.average.module.named_parameters():
        phase = torch.stack([w[name] for w in seen.weights[3:]])
        torch.testing.assert_close(averaged, phase.mean(0))
        assert not torch.allclose(averaged, torch.stack([w[name] for w in seen.weights]).mean(0))
