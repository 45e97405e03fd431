"""Optimizers, weight-decay groups, learning-rate schedules and loss penalties do what their math says."""

import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from tricklab.config import CONF_DIR
from tricklab.errors import ConfigError
from tricklab.tricks.optim import build_optimizer
from tricklab.tricks.regularization import penalized_weights, penalty
from tricklab.tricks.schedule import build_schedule


def conf(group: str, name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / group / f"{name}.yaml"))


def small_net() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


@pytest.mark.parametrize(
    ("name", "cls", "checks"),
    [
        ("sgd", torch.optim.SGD, {"momentum": 0, "nesterov": False}),
        ("momentum", torch.optim.SGD, {"momentum": 0.9, "nesterov": False}),
        ("nesterov", torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
        ("adagrad", torch.optim.Adagrad, {"eps": 1e-10}),
        ("rmsprop", torch.optim.RMSprop, {"alpha": 0.99}),
        ("adam", torch.optim.Adam, {"betas": (0.9, 0.999)}),
        ("adamw", torch.optim.AdamW, {"weight_decay": 0.01}),
    ],
)
def test_each_optimizer_choice_builds_its_torch_class(name, cls, checks):
    cfg = conf("optimizer", name)
    opt = build_optimizer(small_net(), cfg)
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["lr"] == cfg["lr"]
    for key, value in checks.items():
        assert group[key] == value, key


def test_sgd_step_is_lr_times_gradient():
    layer = nn.Linear(3, 1, bias=False)
    before = layer.weight.detach().clone()
    opt = build_optimizer(layer, {"name": "sgd", "lr": 0.1, "weight_decay": 0.0})
    layer(torch.ones(1, 3)).sum().backward()
    opt.step()
    assert torch.allclose(layer.weight, before - 0.1 * torch.ones(1, 3))


def test_weight_decay_skips_norm_and_bias_unless_asked():
    model = small_net()
    opt = build_optimizer(model, {"name": "adamw", "lr": 1e-3, "weight_decay": 0.1})
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(model[0].weight), id(model[3].weight)}
    opt = build_optimizer(model, {"name": "adamw", "lr": 1e-3, "weight_decay": 0.1, "decay_norm_and_bias": True})
    assert all(g["weight_decay"] == 0.1 for g in opt.param_groups)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_unknown_optimizer_option_is_a_config_error():
    with pytest.raises(ConfigError, match="no option momentm.*lr"):
        build_optimizer(small_net(), {"name": "sgd", "lr": 0.1, "momentm": 0.9})


def lr_trajectory(name: str, epochs: int = 10, steps: int = 100, **overrides) -> list[float]:
    """The learning rate at each scheduler step of a fresh SGD(lr=1) optimizer."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    cfg = {**conf("scheduler", name), **overrides}
    sched = build_schedule(opt, cfg, max_epochs=epochs, total_steps=steps).scheduler
    lrs = []
    for _ in range(steps if name in ("onecycle", "warmup_cosine") else epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step(1.0) if name == "plateau" else sched.step()
    return lrs


def test_exponential_decays_by_gamma_per_epoch():
    assert lr_trajectory("exponential") == pytest.approx([0.98**t for t in range(10)])


def test_step_decay():
    assert lr_trajectory("step", step_size=3, gamma=0.5) == pytest.approx([0.5 ** (t // 3) for t in range(10)])


def test_step_decay_at_milestones():
    lrs = lr_trajectory("step", milestones=[5, 8], gamma=0.1)
    assert lrs == pytest.approx([1.0] * 5 + [0.1] * 3 + [0.01] * 2)


def test_cosine_reaches_eta_min_after_max_epochs():
    lrs = lr_trajectory("cosine", epochs=10)
    assert lrs == pytest.approx([(1 + math.cos(math.pi * t / 10)) / 2 for t in range(10)])


def test_plateau_cuts_the_rate_after_patience_flat_epochs():
    lrs = lr_trajectory("plateau", epochs=10, patience=2, factor=0.1)
    assert lrs[:4] == [1.0] * 4 and lrs[4] == pytest.approx(0.1)


def test_onecycle_warms_up_then_anneals():
    lrs = lr_trajectory("onecycle", steps=100)
    peak = max(range(100), key=lrs.__getitem__)
    assert 25 <= peak <= 35 and lrs[peak] == pytest.approx(1.0, rel=0.01)
    assert lrs[0] == pytest.approx(1 / 25, rel=0.01) and lrs[-1] < 1e-3


def test_warmup_cosine():
    lrs = lr_trajectory("warmup_cosine", steps=100, warmup_fraction=0.1)
    assert lrs[0] == pytest.approx(0.01) and lrs[10] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:11], strict=True))
    assert all(a >= b for a, b in zip(lrs[10:-1], lrs[11:], strict=True)) and lrs[-1] < 0.01


def test_constant_schedule_is_none():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    assert build_schedule(opt, {"name": "none"}, 10, 100) is None


def test_penalty_is_l1_plus_half_l2_over_weights_only():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 0.0]]))
    weights = penalized_weights(model)
    assert len(weights) == 1  # biases and norm parameters are not penalised
    assert penalty(weights, l1=0.1, l2=0.0).item() == pytest.approx(0.1 * 6)
    assert penalty(weights, l1=0.0, l2=0.2).item() == pytest.approx(0.5 * 0.2 * 14)
    assert penalty(weights, l1=0.1, l2=0.2).item() == pytest.approx(0.6 + 1.4)


def test_weight_decay_skips_the_weight_norm_gain():
    from torch.nn.utils.parametrizations import weight_norm

    model = nn.Sequential(weight_norm(nn.Linear(4, 8)), nn.ReLU(), weight_norm(nn.Linear(8, 3)))
    opt = build_optimizer(model, {"name": "adamw", "lr": 1e-3, "weight_decay": 0.1})
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    gains = {id(m.parametrizations.weight.original0) for m in (model[0], model[2])}
    directions = {id(m.parametrizations.weight.original1) for m in (model[0], model[2])}
    assert decayed == directions and not decayed & gains  # g is (out, 1) but a norm parameter: no decay
