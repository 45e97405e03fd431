"""ResNet, Inception, deep plain nets and torchvision models on every data shape: output shape, the
run's norm/dropout/activation layers (present when asked, absent when off), skips removed by
residual=false, config checks, and a few optimizer steps that lower the loss."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from tricklab.config import validate
from tricklab.errors import ConfigError
from tricklab.models import build_model
from tricklab.models.blocks import Residual
from tricklab.tricks.norm import WEIGHT_LAYERS, is_norm_layer

# MNIST-1D, digits, (Fashion-)MNIST, CIFAR-10.
SHAPES = [(1, 40), (1, 8, 8), (1, 28, 28), (3, 32, 32)]
# Small versions of each architecture, so a test builds and trains them in well under a second.
ARCHITECTURES = {
    "resnet": ["architecture=resnet", "architecture.depth=8", "architecture.width_multiplier=0.5"],
    "inception": ["architecture=inception", "architecture.width=2", "architecture.blocks=[1,1]"],
    "plain_mlp": ["architecture=plain_deep", "architecture.depth=10", "architecture.width=16"],
    "plain_cnn": ["architecture=plain_deep", "architecture.kind=cnn", "architecture.depth=10", "architecture.width=4"],
    "torchvision": ["architecture=torchvision", "architecture.name=resnet18"],
}
CASES = [(arch, shape) for arch in ARCHITECTURES for shape in SHAPES if not (arch == "torchvision" and len(shape) == 2)]
TRICKS_ON = ["norm=batch", "dropout=standard", "dropout.p=0.2", "architecture.activation=tanh", "init=he"]
TRICKS_OFF = ["norm=none", "dropout.p=0", "architecture.activation=relu"]


@pytest.fixture
def build(make_config):
    """build(arch, shape, overrides) -> the model built from the composed config, as train.py builds it."""

    def make(arch: str, shape: tuple[int, ...], overrides: list[str] = ()) -> nn.Module:
        cfg = make_config([*ARCHITECTURES[arch], *overrides])
        validate(cfg)
        c = OmegaConf.to_container(cfg, resolve=True)
        return build_model(c["architecture"], c["norm"], c["dropout"], c["init"], shape, 10)

    return make


def leaves(model: nn.Module) -> list[nn.Module]:
    """The modules without children, in registration order (the order a plain net applies them)."""
    return [m for m in model.modules() if not list(m.children())]


def chained(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The leaves applied one after another: what a net without skips or branches computes."""
    for layer in leaves(model):
        x = layer(x)
    return x


@pytest.mark.parametrize(("arch", "shape"), CASES)
def test_output_is_one_score_per_class(build, arch, shape):
    assert build(arch, shape)(torch.randn(3, *shape)).shape == (3, 10)


@pytest.mark.parametrize(("arch", "shape"), CASES)
def test_norm_follows_every_weight_layer_and_dropout_and_activation_are_there(build, arch, shape):
    model = build(arch, shape, TRICKS_ON)
    layers = leaves(model)
    weights = [i for i, m in enumerate(layers) if isinstance(m, WEIGHT_LAYERS)]
    assert isinstance(layers[weights[-1]], nn.Linear) and weights[-1] == len(layers) - 1  # the classifier
    for i in weights[:-1]:
        weight, norm = layers[i], layers[i + 1]
        assert isinstance(norm, nn.BatchNorm2d if isinstance(weight, nn.Conv2d) else nn.BatchNorm1d), (weight, norm)
        assert norm.num_features == weight.weight.shape[0]
    assert any(isinstance(m, nn.Tanh) for m in layers) and not any(isinstance(m, nn.ReLU) for m in layers)
    assert any(isinstance(m, nn.Dropout) and m.p == 0.2 for m in layers)


@pytest.mark.parametrize(("arch", "shape"), CASES)
def test_switched_off_tricks_leave_no_layer_anywhere(build, arch, shape):
    layers = leaves(build(arch, shape, TRICKS_OFF))
    assert not any(is_norm_layer(m) for m in layers)
    assert not any(isinstance(m, (nn.Dropout, nn.Dropout1d, nn.Dropout2d)) for m in layers)
    assert any(isinstance(m, nn.ReLU) for m in layers) and not any(isinstance(m, nn.Tanh) for m in layers)


@pytest.mark.parametrize("shape", [(1, 40), (3, 32, 32)])
def test_spatial_dropout_drops_whole_channels_inside_the_blocks(build, shape):
    layers = leaves(build("resnet", shape, ["dropout=spatial", "dropout.p=0.3"]))
    spatial = nn.Dropout1d if len(shape) == 2 else nn.Dropout2d
    assert sum(isinstance(m, spatial) for m in layers) == 3  # one per basic block (depth 8: 3 blocks)


@pytest.mark.parametrize("shape", SHAPES)
def test_residual_false_removes_every_skip(build, shape):
    torch.manual_seed(0)
    resnet = build("resnet", shape, ["norm=batch"])
    torch.manual_seed(0)
    plain = build("resnet", shape, ["norm=batch", "architecture.residual=false"])
    x = torch.randn(4, *shape)

    # Plain: only nn.Sequential containers, so the net is exactly its layers applied one after another.
    assert not any(isinstance(m, Residual) for m in plain.modules())
    assert all(isinstance(m, nn.Sequential) for m in plain.modules() if list(m.children()))
    torch.testing.assert_close(plain(x), chained(plain, x))
    # ResNet: the very same weights (same seed, same order), plus 3 skips that change the output.
    assert sum(isinstance(m, Residual) for m in resnet.modules()) == 3
    for p, q in zip(resnet.parameters(), plain.parameters(), strict=True):
        assert torch.equal(p, q)
    assert not torch.allclose(resnet(x), plain(x))


@pytest.mark.parametrize(("arch", "shape"), CASES)
def test_a_few_steps_lower_the_training_loss(build, arch, shape):
    torch.manual_seed(0)
    model = build(arch, shape, ["norm=batch", "init=he"])
    x, y = torch.randn(8, *shape), torch.arange(8) % 10
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(4):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("depth", [10, 50])
def test_plain_deep_has_depth_weight_layers_and_trains(make_config, kind, depth):
    cfg = make_config(["architecture=plain_deep", f"architecture.kind={kind}", f"architecture.depth={depth}",
                       "architecture.width=8", "norm=batch", "init=he"])
    validate(cfg)
    c = OmegaConf.to_container(cfg, resolve=True)
    torch.manual_seed(0)
    model = build_model(c["architecture"], c["norm"], c["dropout"], c["init"], (1, 40), 10)
    assert sum(isinstance(m, WEIGHT_LAYERS) for m in model.modules()) == depth
    x, y = torch.randn(16, 1, 40), torch.arange(16) % 10
    # lr 3e-3 for 3 steps made the 50-layer MLP oscillate up (2.61 -> 2.78) on this torch build; 1e-3 for 10
    # steps lowers the loss of every depth and kind here
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = nn.functional.cross_entropy(model(x), y)
    for _ in range(10):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    assert nn.functional.cross_entropy(model(x), y) < first


def test_resnet_depth_has_the_6n_plus_2_layers_it_promises(build):
    model = build("resnet", (1, 40), ["architecture.depth=20"])
    assert sum(isinstance(m, WEIGHT_LAYERS) for m in model.modules()) == 20


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["architecture=resnet", "architecture.depth=21"], "architecture.depth=21 is not allowed"),
        (["architecture=resnet", "architecture.depth=2"], "6n+2"),
        (["architecture=resnet", "architecture.residual=maybe"], "architecture.residual"),
        (["architecture=plain_deep", "architecture.depth=1"], "weight layers"),
        (["architecture=plain_deep", "architecture.kind=rnn"], "one of mlp, cnn"),
        (["architecture=inception", "architecture.blocks=[2,0]"], "architecture.blocks"),
    ],
)
def test_bad_architecture_values_are_refused_with_what_is_allowed(make_config, overrides, words):
    with pytest.raises(ConfigError, match=words.replace("+", r"\+")):
        validate(make_config(overrides))


def test_plain_deep_depth_21_is_fine_where_resnet_refuses_it(make_config):
    validate(make_config(["architecture=plain_deep", "architecture.depth=21"]))
    validate(make_config(["architecture=mlp", "architecture.depth=21"]))


@pytest.mark.parametrize(
    ("overrides", "shape", "words"),
    [
        (["architecture.name=resnet18"], (1, 40), "needs image data"),
        (["architecture.name=resnet_nine"], (3, 32, 32), "not a torchvision classification model"),
        (["architecture.name=mobilenet_v2", "architecture.activation=tanh"], (3, 32, 32), "ReLU6"),
        (["architecture.name=densenet121"], (1, 8, 8), "cannot take inputs of shape"),
    ],
)
def test_torchvision_models_refuse_what_they_cannot_take(make_config, overrides, shape, words):
    c = OmegaConf.to_container(make_config(["architecture=torchvision", *overrides]), resolve=True)
    with pytest.raises(ConfigError, match=words):
        build_model(c["architecture"], c["norm"], c["dropout"], c["init"], shape, 10)


def test_torchvision_resnet_gets_a_small_image_stem(build):
    model = build("torchvision", (1, 28, 28))
    assert model.conv1.in_channels == 1 and model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity) and model.fc.out_features == 10


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_init_reaches_every_weight_layer(build, arch):
    """init=he: every weight ~ N(0, 2/n_in) and every bias 0, inside blocks and branches too."""
    model = build(arch, (3, 32, 32), ["init=he", "norm=none"])
    for layer in (m for m in model.modules() if isinstance(m, WEIGHT_LAYERS)):
        n_in = layer.weight[0].numel()
        if layer.weight.numel() >= 2000:  # enough weights for a tight std estimate
            assert layer.weight.std().item() == pytest.approx((2 / n_in) ** 0.5, rel=0.15), layer
        assert layer.bias is None or not layer.bias.any()
