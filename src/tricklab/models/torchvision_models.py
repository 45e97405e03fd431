"""torchvision's reference classification models (``architecture.name`` = resnet18, resnet50,
mobilenet_v2, densenet121, vgg11_bn, ...), built untrained and adapted to small images and to the run's tricks:

- stem: the first conv becomes 3x3, stride 1, taking the data's channels; a stem max-pool (ResNets,
  ShuffleNets: the ``maxpool`` attribute) is removed. The usual CIFAR adaptation of ImageNet models.
- norm: every BatchNorm2d is replaced by the run's norm layer (none: removed) — what torchvision's
  ``norm_layer`` argument does, for every model, including those whose constructor lacks it.
- activation: every nn.ReLU module becomes the run's activation (models with other activations, e.g.
  SiLU or Hardswish, accept only activation=relu, which keeps their own).
- dropout: the model's own Dropout layers take the run's p (removed at p=0); a model without any
  (ResNets) gets one before its classifier.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from tricklab.errors import ConfigError
from tricklab.models.layers import LayerKit
from tricklab.tricks.norm import is_norm_layer

# Activation modules the run's activation cannot stand in for without changing the model's design.
OTHER_ACTIVATIONS = (nn.ReLU6, nn.SiLU, nn.Hardswish, nn.GELU, nn.Mish)


def build_torchvision(cfg: dict[str, Any], kit: LayerKit, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """torchvision model ``cfg["name"]`` (weights=None), its stem adapted to small images and its norm,
    activation and dropout replaced by the run's."""
    import torchvision.models

    name = cfg["name"]
    if len(input_shape) != 3:
        raise ConfigError(
            f"architecture=torchvision (name={name}) needs image data (channels, height, width), but this data "
            f"has shape {tuple(input_shape)}; for 1-D signals use architecture=resnet, inception, plain_deep, cnn "
            f"or mlp."
        )
    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise ConfigError(
            f"architecture.name={name} is not a torchvision classification model; known: {', '.join(known)}."
        )
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    _check_tricks(model, name, kit)
    _adapt_stem(model, input_shape[0])
    _swap(model, lambda m: isinstance(m, nn.BatchNorm2d), lambda m: kit.norm(m.num_features, 2))
    _swap(model, lambda m: type(m) is nn.ReLU, lambda m: kit.act())
    _set_dropout(model, kit)
    _check_forward(model, name, input_shape, num_classes)
    return model


def _check_tricks(model: nn.Module, name: str, kit: LayerKit) -> None:
    """ConfigError for a norm or activation choice this model cannot take."""
    foreign = sorted({type(m).__name__ for m in model.modules()
                      if is_norm_layer(m) and not isinstance(m, nn.BatchNorm2d)})
    if foreign:
        raise ConfigError(
            f"torchvision's {name} normalises with {', '.join(foreign)}, which tricklab cannot swap for the run's "
            f"norm (only BatchNorm2d is swapped); choose a BatchNorm model such as resnet18, mobilenet_v2 or "
            f"densenet121."
        )
    others = sorted({type(m).__name__ for m in model.modules() if isinstance(m, OTHER_ACTIVATIONS)})
    if others and kit.activation != "relu":
        raise ConfigError(
            f"torchvision's {name} uses {', '.join(others)} activations, which architecture.activation cannot "
            f"replace; only activation=relu (the model's own) is allowed for it, or choose a ReLU model such as "
            f"resnet18."
        )


def _adapt_stem(model: nn.Module, in_channels: int) -> None:
    """First conv -> 3x3 stride 1 on the data's channels; the stem max-pool (if any) -> removed."""
    name, conv = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    _replace(model, name, nn.Conv2d(in_channels, conv.out_channels, 3, stride=1, padding=1, bias=conv.bias is not None))
    if isinstance(getattr(model, "maxpool", None), nn.MaxPool2d):
        model.maxpool = nn.Identity()


def _swap(model: nn.Module, match: Callable[[nn.Module], bool], make: Callable[[nn.Module], nn.Module | None]) -> None:
    """Replace every submodule ``match`` accepts by ``make(it)`` (by nn.Identity when that gives None)."""
    for name, module in list(model.named_modules()):
        if name and match(module):
            _replace(model, name, make(module) or nn.Identity())


def _set_dropout(model: nn.Module, kit: LayerKit) -> None:
    """The model's Dropout layers take the run's p; a model without any gets one before its last Linear."""
    own = [name for name, m in model.named_modules() if isinstance(m, nn.Dropout)]
    for name in own:
        _replace(model, name, kit.dropout(0) or nn.Identity())
    if not own and kit.dropout(0) is not None:
        name, linear = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
        _replace(model, name, nn.Sequential(kit.dropout(0), linear))


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new)


@torch.no_grad()
def _check_forward(model: nn.Module, name: str, input_shape: tuple[int, ...], num_classes: int) -> None:
    """One dry training-mode pass on two zero inputs, so a model that cannot take this input size or
    does not return plain class scores fails here with a clear message; norm statistics are reset after."""
    try:
        out = model(torch.zeros(2, *input_shape))
    except RuntimeError as err:
        raise ConfigError(
            f"torchvision's {name} cannot take inputs of shape {tuple(input_shape)} ({str(err).splitlines()[0]}); "
            f"choose a model that downsamples less, e.g. resnet18, or larger images."
        ) from err
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
    if not isinstance(out, torch.Tensor) or out.shape != (2, num_classes):
        raise ConfigError(
            f"torchvision's {name} returns {type(out).__name__} in training, not plain class scores (e.g. auxiliary "
            f"outputs); choose another model, e.g. resnet18."
        )
