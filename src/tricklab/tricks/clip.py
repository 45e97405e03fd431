"""Gradient clipping of one step's gradients g, with ‖g‖₂ taken over all of one model's gradients.

- norm:  g ← g·min(1, θ/‖g‖₂)   (Pascanu, Mikolov & Bengio 2013, "On the difficulty of training RNNs")
- value: gᵢ ← clamp(gᵢ, −θ, θ)  (Mikolov 2012)
- agc:   unit-wise, g_u ← g_u·λ·max(‖W_u‖, ε)/‖g_u‖ where ‖g_u‖/max(‖W_u‖, ε) > λ  (Brock et al. 2021, NFNets)

A clip is ``clip(params, grads, norm)``: it changes ``grads`` in place, each the gradient of the parameter beside
it in ``params`` (a rule that compares a gradient with its weights reads them), ``norm`` being ‖g‖₂ before
clipping for a choice that reads it (``ClipChoice.reads_norm``), else None. Functions of tensors without host
syncs. With ``members=True`` dimension 0 of every tensor indexes stacked models (a fused pack of seeds,
``torch.func.stack_module_state``): norms then come one per member, shape (K,), and each member is clipped by
its own norm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from tricklab.choices import pick

Clip = Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor | None], None]  # clip(params, grads, norm)
EPS = 1e-6  # torch's clip_grad_norm_ adds it too, so that a zero norm does not divide by zero


def grad_norm(grads: list[torch.Tensor], members: bool = False) -> torch.Tensor:
    """‖g‖₂ = √Σⱼ‖gⱼ‖₂² over the gradient tensors gⱼ: a scalar, or (K,) per member."""
    if not members:
        return torch.nn.utils.get_total_norm(grads)
    per_tensor = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads])  # (T, K)
    return torch.linalg.vector_norm(per_tensor, dim=0)


def clip_by_norm_(params: list[torch.Tensor], grads: list[torch.Tensor], norm: torch.Tensor, max_norm: float) -> None:
    """g ← g·min(1, θ/(‖g‖₂+ε)) in place; ``norm`` from ``grad_norm`` (a scalar, or (K,) per member)."""
    scale = (max_norm / (norm + EPS)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.reshape(-1, *([1] * (g.ndim - 1))).to(g.dtype) if scale.ndim else scale.to(g.dtype))


def clip_by_value_(params: list[torch.Tensor], grads: list[torch.Tensor], norm: torch.Tensor | None,
                   max_value: float) -> None:
    """gᵢ ← clamp(gᵢ, −θ, θ) in place (elementwise: the same for stacked members)."""
    for g in grads:
        g.clamp_(-max_value, max_value)


def unitwise_norm(t: torch.Tensor, members: bool = False) -> torch.Tensor:
    """‖·‖₂ of each unit of a parameter (or its gradient), broadcastable to it: over each output unit's fan-in
    (all dimensions but 0) for a matrix or a conv filter bank, over the whole tensor for a vector (a bias, a norm
    gain); with ``members`` dimension 0 indexes stacked models, so each member's units are its own."""
    lead = int(members)
    dims = tuple(range(lead + int(t.ndim - lead > 1), t.ndim))
    return torch.linalg.vector_norm(t, dim=dims, keepdim=True) if dims else t.abs()


@torch.no_grad()
def clip_adaptive_(params: list[torch.Tensor], grads: list[torch.Tensor], norm: torch.Tensor | None,
                   clip_factor: float, eps: float, members: bool = False) -> None:
    """Unit-wise adaptive clipping in place: g_u ← g_u·min(1, λ·max(‖W_u‖, ε)/‖g_u‖), the gradient of each unit
    held to λ times its weights' norm (``norm`` is not read; a zero gradient, floored at 1e-6, stays zero)."""
    for w, g in zip(params, grads, strict=True):
        allowed = unitwise_norm(w, members).clamp_(min=eps).mul_(clip_factor)
        g.mul_((allowed / unitwise_norm(g, members).clamp_(min=EPS)).clamp_(max=1.0))


@dataclass(frozen=True)
class ClipChoice:
    """What ``clip=<name>`` builds: ``build(cfg, members)`` gives the clip (None: no clipping); ``reads_norm``: the
    step hands it ‖g‖₂."""

    build: Callable[[dict[str, Any], bool], Clip | None]
    reads_norm: bool = False


CLIPS: dict[str, ClipChoice] = {
    "none": ClipChoice(lambda cfg, members: None),
    "norm": ClipChoice(lambda cfg, members: partial(clip_by_norm_, max_norm=cfg["max_norm"]), reads_norm=True),
    "value": ClipChoice(lambda cfg, members: partial(clip_by_value_, max_value=cfg["max_value"])),
    "agc": ClipChoice(lambda cfg, members: partial(clip_adaptive_, clip_factor=cfg["clip_factor"], eps=cfg["eps"],
                                                   members=members)),
}


def build_clip(cfg: dict[str, Any] | None, members: bool = False) -> Clip | None:
    """The clipping of ``clip=<name>`` as ``clip(params, grads, norm)``, or None for ``clip=none``; ``members``:
    dimension 0 of the tensors it gets indexes a fused pack's members."""
    cfg = cfg or {"name": "none"}
    return pick(CLIPS, "clip", cfg["name"]).build(cfg, members)


def needs_norm(cfg: dict[str, Any] | None) -> bool:
    """Whether the clipping reads ‖g‖₂."""
    cfg = cfg or {"name": "none"}
    return pick(CLIPS, "clip", cfg["name"]).reads_norm
