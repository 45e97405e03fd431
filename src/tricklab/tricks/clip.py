"""Gradient clipping of one step's gradients g, with ‖g‖₂ taken over all of one model's gradients.

- norm:  g ← g·min(1, θ/‖g‖₂)   (Pascanu, Mikolov & Bengio 2013, "On the difficulty of training RNNs")
- value: gᵢ ← clamp(gᵢ, −θ, θ)  (Mikolov 2012)

Functions of tensors without host syncs. With ``members=True`` dimension 0 of every tensor indexes stacked
models (a fused pack of seeds, ``torch.func.stack_module_state``): norms then come one per member, shape (K,),
and each member is clipped by its own norm.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from tricklab.choices import pick

Clip = Callable[[list[torch.Tensor], torch.Tensor | None], None]
EPS = 1e-6  # torch's clip_grad_norm_ adds it too, so that a zero norm does not divide by zero


def grad_norm(grads: list[torch.Tensor], members: bool = False) -> torch.Tensor:
    """‖g‖₂ = √Σⱼ‖gⱼ‖₂² over the gradient tensors gⱼ: a scalar, or (K,) per member."""
    if not members:
        return torch.nn.utils.get_total_norm(grads)
    per_tensor = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads])  # (T, K)
    return torch.linalg.vector_norm(per_tensor, dim=0)


def clip_by_norm_(grads: list[torch.Tensor], norm: torch.Tensor, max_norm: float) -> None:
    """g ← g·min(1, θ/(‖g‖₂+ε)) in place; ``norm`` from ``grad_norm`` (a scalar, or (K,) per member)."""
    scale = (max_norm / (norm + EPS)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.reshape(-1, *([1] * (g.ndim - 1))).to(g.dtype) if scale.ndim else scale.to(g.dtype))


def clip_by_value_(grads: list[torch.Tensor], norm: torch.Tensor | None, max_value: float) -> None:
    """gᵢ ← clamp(gᵢ, −θ, θ) in place (elementwise: the same for stacked members)."""
    for g in grads:
        g.clamp_(-max_value, max_value)


CLIPS: dict[str, Callable[[dict[str, Any]], Clip | None]] = {
    "none": lambda cfg: None,
    "norm": lambda cfg: partial(clip_by_norm_, max_norm=cfg["max_norm"]),
    "value": lambda cfg: partial(clip_by_value_, max_value=cfg["max_value"]),
}


def build_clip(cfg: dict[str, Any] | None) -> Clip | None:
    """The clipping of ``clip=<name>`` as ``clip(grads, norm)``, or None for ``clip=none``."""
    cfg = cfg or {"name": "none"}
    return pick(CLIPS, "clip", cfg["name"])(cfg)


def needs_norm(cfg: dict[str, Any] | None) -> bool:
    """Whether the clipping reads ‖g‖₂."""
    return (cfg or {}).get("name") == "norm"
