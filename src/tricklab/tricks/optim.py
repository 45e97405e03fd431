"""Optimizers by name, with weight decay that can skip norm parameters and biases.

The YAML of each optimizer holds its update rule; every key but ``name`` and ``decay_norm_and_bias``
is passed to the torch.optim class, so a new hyper-parameter needs no code.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tricklab.choices import pick
from tricklab.errors import ConfigError
from tricklab.torch_names import OWN_KEYS, unknown_options_problem

# name -> (torch class, fixed arguments that make the variant)
OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    "sgd": (torch.optim.SGD, {}),
    "momentum": (torch.optim.SGD, {}),
    "nesterov": (torch.optim.SGD, {"nesterov": True}),
    "adagrad": (torch.optim.Adagrad, {}),
    "rmsprop": (torch.optim.RMSprop, {}),
    "adam": (torch.optim.Adam, {}),
    "adamw": (torch.optim.AdamW, {}),
}


# Weight normalisation's gain g (w = g·v/‖v‖) is stored with the weight's ndim, but is a norm parameter.
WEIGHT_NORM_GAIN = "parametrizations.weight.original0"


def is_norm_or_bias(name: str, ndim: int) -> bool:
    """Biases and norm gains/shifts: tensors of ndim ≤ 1 (in one model), and weight normalisation's gain g."""
    return ndim <= 1 or name.endswith(WEIGHT_NORM_GAIN)


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter, int]]:
    """(name, parameter, its ndim in one model) of every trainable parameter. A fused pack
    (``tricklab.fuse.stack.Pack``) stacks its members' parameters along a dimension 0 that no rule may count."""
    if hasattr(model, "member_named_parameters"):
        return [(n, p, p.ndim - 1) for n, p in model.member_named_parameters() if p.requires_grad]
    return [(n, p, p.ndim) for n, p in model.named_parameters() if p.requires_grad]


def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool) -> list[dict[str, Any]]:
    """One group with weight decay, and one without for biases and norm parameters unless
    ``decay_norm_and_bias``."""
    named = trainable(model)
    if decay_norm_and_bias or weight_decay == 0:
        return [{"params": [p for _, p, _ in named], "weight_decay": weight_decay}]
    decay = [p for n, p, ndim in named if not is_norm_or_bias(n, ndim)]
    no_decay = [p for n, p, ndim in named if is_norm_or_bias(n, ndim)]
    return [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0})
            if g["params"]]


def build_optimizer(model: nn.Module, cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """The optimizer ``cfg['name']`` over ``model``'s parameters with the hyper-parameters in ``cfg``."""
    name = cfg["name"]
    cls, fixed = pick(OPTIMIZERS, "optimizer", name)
    if why := unknown_options_problem(name, cfg):
        raise ConfigError(why)
    options = {k: v for k, v in cfg.items() if k not in OWN_KEYS}
    if "betas" in options:
        options["betas"] = tuple(options["betas"])
    weight_decay = options.pop("weight_decay", 0.0)
    groups = param_groups(model, weight_decay, cfg.get("decay_norm_and_bias", False))
    return cls(groups, **options, **fixed)
