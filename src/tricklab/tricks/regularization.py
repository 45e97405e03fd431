"""Penalty terms on the loss: λ₁·Σ|w| + (λ₂/2)·Σw² over the weights of every Linear/Conv layer.

Biases and norm parameters are left alone, as in the classic formulation. Unlike optimizer weight decay,
the penalty's gradient passes through the optimizer (Adam rescales it; for plain SGD L2 equals decay).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn

from tricklab.tricks.norm import WEIGHT_LAYERS


def penalized_weights(model: nn.Module) -> list[torch.Tensor]:
    """The weight tensors the penalty applies to (weight-normed layers expose the effective w)."""
    return [m.weight for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]


def penalty(weights: list[torch.Tensor], l1: float, l2: float, members: bool = False) -> torch.Tensor:
    """λ₁·Σ|w| + (λ₂/2)·Σw²: a scalar, or (K,) one per member when dimension 0 indexes stacked models."""
    def total(values: torch.Tensor) -> torch.Tensor:
        return values.flatten(1).sum(1) if members else values.sum()

    result = torch.zeros(len(weights[0]) if members else (), device=weights[0].device, dtype=weights[0].dtype)
    for w in weights:
        if l1:
            result = result + l1 * total(w.abs())
        if l2:
            result = result + 0.5 * l2 * total(w.pow(2))
    return result


def model_penalty(model: nn.Module, l1: float, l2: float, members: bool = False) -> torch.Tensor:
    """The penalty of ``model``'s current weights; of each member's, (K,), for a fused pack (``members``)."""
    return penalty(model.penalized_weights() if members else penalized_weights(model), l1, l2, members)


def build_penalty(cfg: dict[str, Any] | None, members: bool = False) -> Callable[[nn.Module], torch.Tensor] | None:
    """``penalty(model)`` for ``regularization=<l1|l2|elastic>``, or None when λ₁ = λ₂ = 0."""
    l1, l2 = float((cfg or {}).get("l1", 0.0)), float((cfg or {}).get("l2", 0.0))
    return partial(model_penalty, l1=l1, l2=l2, members=members) if l1 or l2 else None
