"""MLP and CNN take the norm, dropout and activation choices the same way, on 1-D and 2-D data."""

import pytest
import torch
from torch import nn

from tricklab.models import build_model
from tricklab.tricks.norm import is_norm_layer, largest_divisor

SHAPES = [(1, 40), (1, 8, 8), (1, 28, 28), (3, 32, 32)]
MLP = {"name": "mlp", "depth": 3, "width": 32, "activation": "relu"}
CNN = {"name": "cnn", "channels": [8, 16], "kernel_size": 3, "hidden": 32, "activation": "relu"}


def build(arch, shape=(1, 40), norm="none", p=0.0, dropout="standard", activation=None, init="default"):
    arch = {**arch, "activation": activation or arch["activation"]}
    norm_cfg = {"name": norm, "groups": 4, "eps": 1e-5, "momentum": 0.1}
    return build_model(arch, norm_cfg, {"name": dropout, "p": p}, {"name": init}, shape, 10)


def weight_layers(model):
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]


@pytest.mark.parametrize("arch", [MLP, CNN], ids=["mlp", "cnn"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_output_shape(arch, shape):
    model = build(arch, shape)
    assert model(torch.randn(5, *shape)).shape == (5, 10)


def test_cnn_uses_conv1d_for_signals_and_conv2d_for_images():
    assert any(isinstance(m, nn.Conv1d) for m in build(CNN, (1, 40)).modules())
    assert any(isinstance(m, nn.Conv2d) for m in build(CNN, (1, 28, 28)).modules())


@pytest.mark.parametrize("arch", [MLP, CNN], ids=["mlp", "cnn"])
@pytest.mark.parametrize(("norm", "layer_type"), [("batch", (nn.BatchNorm1d, nn.BatchNorm2d)),
                                                  ("layer", (nn.LayerNorm, nn.GroupNorm)),
                                                  ("group", nn.GroupNorm)])
def test_norm_follows_each_hidden_weight_layer_before_the_activation(arch, norm, layer_type):
    model = build(arch, (1, 28, 28), norm=norm)
    layers = list(model)
    weights = [i for i, m in enumerate(layers) if isinstance(m, (nn.Linear, nn.Conv2d))]
    for i in weights[:-1]:  # every weight layer but the classifier
        assert isinstance(layers[i + 1], layer_type), (norm, layers[i + 1])
        assert isinstance(layers[i + 2], nn.ReLU)
        assert layers[i].bias is None  # the norm's shift β makes the bias redundant
    assert not any(is_norm_layer(m) for m in layers[weights[-1]:])
    assert sum(is_norm_layer(m) for m in layers) == len(weights) - 1


@pytest.mark.parametrize("arch", [MLP, CNN], ids=["mlp", "cnn"])
def test_norm_none_leaves_no_norm_layer(arch):
    model = build(arch, (1, 8, 8), norm="none")
    assert not any(is_norm_layer(m) for m in model.modules())
    assert all(m.bias is not None for m in weight_layers(model))


def test_group_norm_groups_divide_the_channels():
    model = build(CNN, (1, 8, 8), norm="group")
    assert all(m.num_channels % m.num_groups == 0 for m in model.modules() if isinstance(m, nn.GroupNorm))
    assert largest_divisor(12, 8) == 6 and largest_divisor(7, 4) == 1


def test_weight_norm_reparametrises_every_weight_layer_and_keeps_the_init():
    torch.manual_seed(0)
    plain = build(MLP, init="he")
    torch.manual_seed(0)
    normed = build(MLP, init="he", norm="weight")
    for a, b in zip(weight_layers(plain), weight_layers(normed), strict=True):
        assert hasattr(b, "parametrizations") and "weight" in b.parametrizations
        assert torch.allclose(a.weight, b.weight, atol=1e-6)
        g = b.parametrizations.weight.original0
        assert torch.allclose(g.squeeze(), b.weight.norm(dim=1), atol=1e-5)  # w = g·v/‖v‖
    assert not any(is_norm_layer(m) for m in normed.modules())


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_rate_matches_and_only_acts_in_training(p):
    model = build(MLP, p=p)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == MLP["depth"] and all(d.p == p for d in drops)
    x = torch.ones(2000, 32)
    drops[0].train()
    assert (drops[0](x) == 0).float().mean().item() == pytest.approx(p, abs=0.03)
    model.eval()
    inputs = torch.randn(4, 1, 40)
    assert torch.equal(model(inputs), model(inputs))


def test_dropout_zero_adds_no_layer_and_cnn_drops_before_the_classifier():
    assert not any(isinstance(m, nn.Dropout) for m in build(CNN).modules())
    layers = list(build(CNN, p=0.5))
    assert isinstance(layers[-2], nn.Dropout) and isinstance(layers[-1], nn.Linear)


def test_spatial_dropout_drops_whole_channels_in_conv_layers():
    model = build(CNN, (1, 8, 8), p=0.3, dropout="spatial")
    assert any(isinstance(m, nn.Dropout2d) for m in model.modules())


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu"])
def test_activation_choice_is_used_everywhere(activation):
    model = build(MLP, activation=activation)
    expected = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}[activation]
    acts = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU))]
    assert len(acts) == MLP["depth"] and all(isinstance(a, expected) for a in acts)
