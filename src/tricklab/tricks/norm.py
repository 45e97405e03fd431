"""Normalisation: the layer that follows each weight layer, or weight normalisation of the weights.

- batch: y = γ(x-μ_B)/√(σ²_B+ε)+β, statistics over the batch (and positions) per channel
- layer: the same with statistics over each sample's features (channels and positions)
- group: statistics over each sample's groups of channels (GroupNorm)
- weight: no layer; w = g·v/‖v‖ per output unit (torch's weight_norm parametrization)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from tricklab.choices import pick

# Norm layers with a learned shift β make the bias of the weight layer before them redundant.
SHIFTING_NORMS = ("batch", "layer", "group")
WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)


def _batch(cfg: dict[str, Any], channels: int, dims: int, eps: float) -> nn.Module:
    batch_norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    return batch_norm(channels, eps=eps, momentum=cfg.get("momentum", 0.1))


def _layer(cfg: dict[str, Any], channels: int, dims: int, eps: float) -> nn.Module:
    return nn.LayerNorm(channels, eps=eps) if dims == 0 else nn.GroupNorm(1, channels, eps=eps)


def _group(cfg: dict[str, Any], channels: int, dims: int, eps: float) -> nn.Module:
    return nn.GroupNorm(largest_divisor(channels, cfg["groups"]), channels, eps=eps)


# name -> its layer(cfg, channels, dims, eps) after a weight layer; None: no layer (weight norm acts on the weights)
NORMS: dict[str, Callable[[dict[str, Any], int, int, float], nn.Module] | None] = {
    "none": None,
    "batch": _batch,
    "layer": _layer,
    "group": _group,
    "weight": None,
}


def make_norm(cfg: dict[str, Any], channels: int, dims: int) -> nn.Module | None:
    """The norm layer for ``channels`` features of a dense (dims=0) or conv (dims=1, 2) layer output."""
    layer = pick(NORMS, "norm", cfg["name"])
    return None if layer is None else layer(cfg, channels, dims, cfg.get("eps", 1e-5))


def largest_divisor(channels: int, at_most: int) -> int:
    """The largest number of groups ≤ ``at_most`` that divides ``channels``."""
    return max(g for g in range(1, min(at_most, channels) + 1) if channels % g == 0)


def apply_weight_norm(model: nn.Module, cfg: dict[str, Any]) -> nn.Module:
    """With ``norm=weight`` (Salimans & Kingma 2016), reparametrise every Linear/Conv weight as w = g·v/‖v‖ per
    output unit; g starts at ‖w‖, so w is unchanged: apply it after the init."""
    from torch.nn.utils.parametrizations import weight_norm

    if cfg["name"] != "weight":
        return model
    for module in list(model.modules()):
        if isinstance(module, WEIGHT_LAYERS):
            weight_norm(module)
    return model


def is_norm_layer(module: nn.Module) -> bool:
    """True for the layers ``make_norm`` creates."""
    return isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm))


