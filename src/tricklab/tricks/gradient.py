"""The gradient stage of the step: how g = ∂objective/∂θ is computed from the minibatch.

- backward: one backward pass of the step's objective (the default: what every other trick assumes)
- sam: g = ∇L(θ + ε̂), ε̂ = ρ·∇L(θ)/‖∇L(θ)‖₂ (Foret et al. 2021): the gradient at the worst nearby weights

A gradient rule is ``gradients(module, objective, x, y)``: it leaves the step's gradients in ``p.grad`` (through
``module.compute_gradients``, which zeroes the old ones, unscales under a gradient scaler and, in a fused pack,
keeps each member's loss to its own weights). ``objective`` is the objective of the step's forward pass at the
current weights; a rule that needs more passes (a look-ahead at perturbed weights, as sharpness-aware
minimization does) recomputes it with ``module.objective(x, y)``. Every later stage (‖g‖₂, callbacks, clipping,
the update) sees only the gradients the rule leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from tricklab.choices import pick
from tricklab.tricks.clip import EPS, grad_norm

Gradients = Callable[[Any, torch.Tensor, torch.Tensor, torch.Tensor], None]  # gradients(module, objective, x, y)


def backward(module: Any, objective: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
    """g = ∂objective/∂θ by one backward pass."""
    module.compute_gradients(objective)


def sam(module: Any, objective: torch.Tensor, x: torch.Tensor, y: torch.Tensor, rho: float,
        members: bool = False) -> None:
    """Sharpness-aware gradients: g at θ, a step ε̂ = ρ·g/‖g‖₂ up it (each member by its own ‖g‖₂), g again at
    θ + ε̂ by a second forward and backward pass, then θ back. The update is the optimizer's, on that g."""
    module.compute_gradients(objective)
    params = [p for p in module.params if p.grad is not None]
    scale = rho / (grad_norm([p.grad for p in params], members) + EPS)
    with torch.no_grad():
        at = [p.detach().clone() for p in params]  # θ, put back exactly (θ + ε̂ − ε̂ would round)
        for p in params:
            p.add_(p.grad * (scale.reshape(-1, *([1] * (p.ndim - 1))) if members else scale))
    module.compute_gradients(module.objective(x, y)[2])
    with torch.no_grad():
        for p, theta in zip(params, at, strict=True):
            p.copy_(theta)


# name -> build(cfg, members): the gradient rule of gradient=<name>
GRADIENTS: dict[str, Callable[[dict[str, Any], bool], Gradients]] = {
    "backward": lambda cfg, members: backward,
    "sam": lambda cfg, members: partial(sam, rho=cfg["rho"], members=members),
}


def build_gradients(cfg: dict[str, Any] | None, members: bool = False) -> Gradients:
    """The gradient rule of ``gradient=<name>`` (``backward`` when the config has no gradient group)."""
    cfg = cfg or {"name": "backward"}
    return pick(GRADIENTS, "gradient", cfg["name"])(cfg, members)
