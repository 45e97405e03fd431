"""Each init gives the weight statistics its formula says, on dense and conv layers; biases are zero."""

import math

import pytest
import torch
from torch import nn

from tricklab.tricks.init import INITS, apply_init, fans

N_IN, N_OUT = 400, 300


def net() -> nn.Module:
    return nn.Sequential(nn.Linear(N_IN, N_OUT), nn.ReLU(), nn.Conv2d(16, 32, 5))


EXPECTED_STD = {
    "uniform": lambda n_in, n_out: 1 / math.sqrt(n_in) / math.sqrt(3),  # U(±a) has std a/√3
    "normal": lambda n_in, n_out: 1.0,
    "gaussian": lambda n_in, n_out: 1 / n_in,
    "lecun": lambda n_in, n_out: 1 / math.sqrt(n_in),
    "glorot": lambda n_in, n_out: math.sqrt(2 / (n_in + n_out)),
    "glorot_uniform": lambda n_in, n_out: math.sqrt(2 / (n_in + n_out)),
    "he": lambda n_in, n_out: math.sqrt(2 / n_in),
}


def orthogonal_std(weight: torch.Tensor) -> float:
    """Q (rows x cols, the weight flattened to (out, n_in)) has min(rows, cols) unit vectors: mean square 1/max."""
    return 1 / math.sqrt(max(weight.shape[0], fans(weight)[0]))


@pytest.mark.parametrize("name", sorted(EXPECTED_STD) + ["orthogonal"])
def test_weight_std_matches_the_formula(name):
    torch.manual_seed(0)
    model = apply_init(net(), {"name": name})
    for layer in (model[0], model[2]):
        n_in, n_out = fans(layer.weight)
        std = layer.weight.std().item()
        expected = orthogonal_std(layer.weight) if name == "orthogonal" else EXPECTED_STD[name](n_in, n_out)
        assert std == pytest.approx(expected, rel=0.05), (name, type(layer).__name__)
        assert abs(layer.weight.mean().item()) < 0.1 * std
        assert torch.count_nonzero(layer.bias) == 0


def test_uniform_init_is_bounded_by_one_over_sqrt_fan_in():
    model = apply_init(net(), {"name": "uniform"})
    bound = 1 / math.sqrt(N_IN)
    assert model[0].weight.abs().max().item() <= bound
    assert model[0].weight.abs().max().item() > 0.95 * bound


def test_normal_std_is_configurable():
    model = apply_init(net(), {"name": "normal", "std": 0.01})
    assert model[0].weight.std().item() == pytest.approx(0.01, rel=0.05)


def test_orthogonal_rows_are_orthonormal():
    model = apply_init(net(), {"name": "orthogonal", "gain": 1.0})
    w = model[0].weight  # 300 x 400: orthonormal rows
    assert torch.allclose(w @ w.T, torch.eye(N_OUT), atol=1e-4)


def test_default_keeps_pytorch_init():
    torch.manual_seed(0)
    reference = net()
    torch.manual_seed(0)
    model = apply_init(net(), {"name": "default"})
    for a, b in zip(reference.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.count_nonzero(model[0].bias) > 0  # PyTorch's default biases are not zero


def test_fans_of_linear_and_conv():
    assert fans(nn.Linear(7, 3).weight) == (7, 3)
    assert fans(nn.Conv1d(4, 8, 5).weight) == (20, 40)


def test_every_init_choice_has_a_function():
    assert set(EXPECTED_STD) | {"default", "orthogonal"} == set(INITS)
