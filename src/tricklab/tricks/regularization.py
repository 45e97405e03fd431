"""Penalty terms on the loss: λ₁·Σ|w| + (λ₂/2)·Σw² over the weights of every Linear/Conv layer.

Biases and norm parameters are left alone, as in the classic formulation. Unlike optimizer weight decay,
the penalty's gradient passes through the optimizer (Adam rescales it; for plain SGD L2 equals decay).
"""

from __future__ import annotations

import torch
from torch import nn

from tricklab.tricks.norm import WEIGHT_LAYERS


def penalized_weights(model: nn.Module) -> list[torch.Tensor]:
    """The weight tensors the penalty applies to (weight-normed layers expose the effective w)."""
    return [m.weight for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]


def penalty(weights: list[torch.Tensor], l1: float, l2: float) -> torch.Tensor:
    """λ₁·Σ|w| + (λ₂/2)·Σw²."""
    total = weights[0].new_zeros(())
    for w in weights:
        if l1:
            total = total + l1 * w.abs().sum()
        if l2:
            total = total + 0.5 * l2 * w.pow(2).sum()
    return total
