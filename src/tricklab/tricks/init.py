"""Weight initialisation schemes, applied to every Linear/Conv layer of any architecture.

n_in (fan-in) = in_features, or in_channels·kernel size for a conv; n_out likewise. Biases are set to 0
(except for `default`, which keeps PyTorch's own init of weights and biases).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from tricklab.choices import pick
from tricklab.tricks.norm import WEIGHT_LAYERS


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """(n_in, n_out) of a Linear (out, in) or Conv (out, in, *kernel) weight."""
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def uniform(w: torch.Tensor, cfg: dict[str, Any]) -> None:
    """W ~ U(-1/√n_in, 1/√n_in)."""
    bound = 1 / math.sqrt(fans(w)[0])
    nn.init.uniform_(w, -bound, bound)


def normal(w: torch.Tensor, cfg: dict[str, Any]) -> None:
    """W ~ N(0, std²) with a fixed std (default 1)."""
    nn.init.normal_(w, 0.0, cfg.get("std", 1.0))


def gaussian(w: torch.Tensor, cfg: dict[str, Any]) -> None:
    """W ~ N(0, std²), std = 1/n_in."""
    nn.init.normal_(w, 0.0, 1 / fans(w)[0])


def lecun(w: torch.Tensor, cfg: dict[str, Any]) -> None:
    """W ~ N(0, 1/n_in)."""
    nn.init.normal_(w, 0.0, 1 / math.sqrt(fans(w)[0]))


def glorot(w: torch.Tensor, cfg: dict[str, Any]) -> None:
    """W ~ N(0, 2/(n_in+n_out))."""
    nn.init.xavier_normal_(w)


def glorot_uniform(w: torch.Tensor, cfg: dict[str, Any]) -> None:
    """W ~ U(±√(6/(n_in+n_out))), std √(2/(n_in+n_out))."""
    nn.init.xavier_uniform_(w)


def he(w: torch.Tensor, cfg: dict[str, Any]) -> None:
    """W ~ N(0, 2/n_in)."""
    nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu")


def orthogonal(w: torch.Tensor, cfg: dict[str, Any]) -> None:
    """W = gain·Q with Q (semi-)orthogonal over the flattened (out, in·kernel) matrix."""
    nn.init.orthogonal_(w, gain=cfg.get("gain", 1.0))


INITS: dict[str, Callable[[torch.Tensor, dict[str, Any]], None] | None] = {
    "default": None,
    "uniform": uniform,
    "normal": normal,
    "gaussian": gaussian,
    "lecun": lecun,
    "glorot": glorot,
    "glorot_uniform": glorot_uniform,
    "he": he,
    "orthogonal": orthogonal,
}


@torch.no_grad()
def apply_init(model: nn.Module, cfg: dict[str, Any]) -> nn.Module:
    """Initialise every Linear/Conv weight of ``model`` by ``cfg['name']`` and zero its bias."""
    scheme = pick(INITS, "init", cfg["name"])
    if scheme is None:
        return model
    for module in model.modules():
        if isinstance(module, WEIGHT_LAYERS):
            scheme(module.weight, cfg)
            if module.bias is not None:
                module.bias.zero_()
    return model
