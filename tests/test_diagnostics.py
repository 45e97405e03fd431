"""Per-layer diagnostics: hand-computed statistics on a tiny net, vanishing and exploding gradients in deep MLPs."""

from __future__ import annotations

import copy
import csv
import json
import math
import re

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from wandb_file import find_run_files, read_finished_run

from tricklab.callbacks.diagnostics import LayerDiagnostics, activation_stats, find_probes
from tricklab.config import validate
from tricklab.errors import ConfigError
from tricklab.module import ClassifierModule
from tricklab.tricks.step import build_step_tricks


def test_activation_stats_relu_dead_units_are_units_zero_on_the_whole_batch():
    a = torch.tensor([[0.0, 2.0, 0.0], [0.0, 4.0, 1.0]])  # unit 0 dead; unit 2 alive on one example
    stats = activation_stats(a, "relu")
    assert stats["act_mean"].item() == pytest.approx(7 / 6)
    assert stats["act_std"].item() == pytest.approx(torch.tensor([0.0, 2, 0, 0, 4, 1]).std().item())
    assert stats["dead_frac"].item() == pytest.approx(1 / 3)
    assert "saturated_frac" not in stats


def test_activation_stats_conv_units_are_channels():
    a = torch.zeros(2, 2, 3)
    a[1, 1, 2] = 1.0  # channel 1 alive at one position of one example
    assert activation_stats(a, "relu")["dead_frac"].item() == pytest.approx(0.5)


@pytest.mark.parametrize(("activation", "values", "expected"), [
    ("tanh", [0.995, 0.5, -0.999, 0.0], 0.5),
    ("sigmoid", [0.005, 0.5, 0.995, 0.2, 0.3], 0.4),
])
def test_activation_stats_saturated_fraction(activation, values, expected):
    stats = activation_stats(torch.tensor([values]), activation)
    assert stats["saturated_frac"].item() == pytest.approx(expected)
    assert "dead_frac" not in stats


def test_probes_pair_each_weight_layer_with_the_activation_after_it():
    net = nn.Sequential(nn.Flatten(), nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 4), nn.ReLU(),
                        nn.Dropout(0.1), nn.Linear(4, 2))
    probes = find_probes(net)
    assert [p.name for p in probes] == ["1", "4", "7"]
    assert [p.activation_name for p in probes] == ["tanh", "relu", None]


def tiny_net(lr: float) -> ClassifierModule:
    """Linear(3,4) -> ReLU -> Linear(4,2) trained by plain SGD (ClassifierModule's step, whose stages the
    diagnostics plug into)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    return ClassifierModule(net, build_step_tricks({"optimizer": {"name": "sgd", "lr": lr, "weight_decay": 0.0}}))


def test_layers_csv_matches_hand_computed_statistics(tmp_path):
    torch.manual_seed(1)
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    module = tiny_net(lr=0.1)
    net = copy.deepcopy(module.model)
    trainer = pl.Trainer(max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[LayerDiagnostics(tmp_path / "layers.csv", 2)])
    trainer.fit(module, train_dataloaders=DataLoader(TensorDataset(x, y), batch_size=16))

    rows = list(csv.DictReader((tmp_path / "layers.csv").open()))
    assert [(r["step"], r["layer"]) for r in rows] == [("0", "0"), ("0", "1"), ("2", "0"), ("2", "1")]
    assert {r["epoch"] for r in rows} == {"1", "3"}  # one step per epoch; epochs count from 1
    # by hand, at step 0 (the initial weights)
    hidden = torch.relu(net[0](x))
    logits = net[2](hidden)
    F.cross_entropy(logits, y).backward()
    first, last = rows[0], rows[1]
    assert first["activation"] == "relu" and last["activation"] == "none"
    assert float(first["act_mean"]) == pytest.approx(hidden.mean().item(), rel=1e-5)
    assert float(first["act_std"]) == pytest.approx(hidden.std().item(), rel=1e-5)
    dead = (hidden > 0).sum(0).eq(0).float().mean().item()
    assert float(first["dead_frac"]) == pytest.approx(dead)
    assert float(last["act_std"]) == pytest.approx(logits.std().item(), rel=1e-5)
    for row, layer in ((first, net[0]), (last, net[2])):
        grad, weight = layer.weight.grad.norm().item(), layer.weight.norm().item()
        assert float(row["grad_norm"]) == pytest.approx(grad, rel=1e-5)
        assert float(row["weight_norm"]) == pytest.approx(weight, rel=1e-5)
        assert float(row["update_ratio"]) == pytest.approx(0.1 * grad / weight, rel=1e-4)  # SGD: ΔW = -lr·g


def _grad_profile(run_training, tmp_path, overrides: list[str], name: str) -> list[float]:
    """Gradient norms per weight layer (input first) at step 0 of a one-step run."""
    run_training(["diagnostics=on", "diagnostics.every_n_steps=1", "trainer.max_epochs=1",
                  "trainer.limit_train_batches=1", "data.subset=256", "architecture.width=64", *overrides], name=name)
    rows = [r for r in csv.DictReader((tmp_path / name / "layers.csv").open()) if r["step"] == "0"]
    return [float(r["grad_norm"]) for r in rows]


def test_deep_sigmoid_net_with_small_init_has_gradients_vanishing_towards_the_input(run_training, tmp_path):
    norms = _grad_profile(run_training, tmp_path, ["architecture.depth=8", "architecture.activation=sigmoid",
                                                   "init=gaussian"], "sigmoid")
    assert len(norms) == 9
    assert all(a < b for a, b in zip(norms, norms[1:], strict=False))  # shrinking layer by layer towards the input
    assert norms[0] < 1e-3 * norms[-1]


def test_deep_tanh_net_with_normal_init_has_gradients_growing_towards_the_input(run_training, tmp_path):
    norms = _grad_profile(run_training, tmp_path, ["architecture.depth=8", "architecture.activation=tanh",
                                                   "init=normal"], "tanh")
    assert all(a > b for a, b in zip(norms, norms[1:], strict=False))
    assert norms[0] > 10 * norms[-1]


def test_relu_net_with_normal_init_has_gradients_exploding_with_depth(run_training, tmp_path):
    """N(0,1) multiplies the signal by about √(n/2) per ReLU layer: gradients grow with depth."""
    shallow = _grad_profile(run_training, tmp_path, ["architecture.depth=2", "init=normal"], "shallow")
    deep = _grad_profile(run_training, tmp_path, ["architecture.depth=6", "init=normal"], "deep")
    assert deep[0] > 100 * shallow[0]
    assert math.isfinite(deep[0])


def test_wandb_receives_layer_line_plots_and_histograms(run_training, tmp_path):
    run_training(["logger=wandb", "logger.mode=offline", "diagnostics=on", "diagnostics.every_n_steps=3",
                  "trainer.max_epochs=2", "data.subset=256"], name="wb")
    (run_file,) = find_run_files(tmp_path / "wb")
    rows = read_finished_run(run_file).history
    diagnosed = [row for row in rows if "layers/00.1/grad_norm" in row]
    assert [row["trainer/global_step"] for row in diagnosed] == [0, 3]  # 2 epochs of 2 steps: steps 0-3
    assert all(row["layers/00.1/grad_norm"] > 0 for row in diagnosed)
    histograms = [row for row in rows if "histograms/00.1/activation/_type" in row]
    assert len(histograms) == 2 and histograms[0]["histograms/02.5/gradient/_type"] == "histogram"


@pytest.mark.parametrize(("group", "override"), [
    ("diagnostics=on", "diagnostics.every_n_steps=0"),
    ("averaging=ema", "averaging.decay=1.0"),
    ("averaging=swa", "averaging.start_fraction=1.5"),
    ("averaging=none", "callbacks.divergence.max_loss_factor=0.5"),
])
def test_bad_values_of_the_new_options_are_refused(make_config, group, override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=f"{re.escape(key)}=.* must be"):
        validate(make_config([group, override]))


def test_a_resumed_run_writes_each_diagnosed_step_once(run_training, tmp_path):
    """The resumed run repeats no step, and layers.csv keeps one row per step and layer."""
    common = ["diagnostics=on", "diagnostics.every_n_steps=2", "data.subset=300",
              "callbacks.checkpoint.every_seconds=0"]
    first = run_training([*common, "trainer.max_epochs=2"])  # 3 steps an epoch
    metrics_file = tmp_path / "run" / "metrics.json"
    metrics_file.write_text(json.dumps({**first, "status": "interrupted"}))  # as if killed after epoch 2
    layers = tmp_path / "run" / "layers.csv"
    with layers.open("a", newline="") as f:  # what the killed attempt wrote past its last checkpoint
        csv.writer(f).writerow(["6", "3", "0", "x", "Linear", "relu"] + [""] * 7)
    second = run_training([*common, "trainer.max_epochs=4"])
    assert second["resumed_from"] and second["steps"] == 12
    rows = list(csv.DictReader(layers.open()))
    steps = [(int(r["step"]), int(r["layer"])) for r in rows]
    assert len(steps) == len(set(steps))
    assert sorted({step for step, _ in steps}) == [0, 2, 4, 6, 8, 10]
    assert all(r["name"] != "x" for r in rows)
