"""The gradient stage of the step: how g = ∂objective/∂θ is computed from the minibatch.

- backward: one backward pass of the step's objective (the default: what every other trick assumes)

A gradient rule is ``gradients(module, objective, x, y)``: it leaves the step's gradients in ``p.grad`` (through
``module.compute_gradients``, which zeroes the old ones, unscales under a gradient scaler and, in a fused pack,
keeps each member's loss to its own weights). ``objective`` is the objective of the step's forward pass at the
current weights; a rule that needs more passes (a look-ahead at perturbed weights, as sharpness-aware
minimization does) recomputes it with ``module.objective(x, y)``. Every later stage (‖g‖₂, callbacks, clipping,
the update) sees only the gradients the rule leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tricklab.choices import pick

Gradients = Callable[[Any, torch.Tensor, torch.Tensor, torch.Tensor], None]  # gradients(module, objective, x, y)


def backward(module: Any, objective: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
    """g = ∂objective/∂θ by one backward pass."""
    module.compute_gradients(objective)


# name -> build(cfg, members): the gradient rule of gradient=<name>
GRADIENTS: dict[str, Callable[[dict[str, Any], bool], Gradients]] = {
    "backward": lambda cfg, members: backward,
}


def build_gradients(cfg: dict[str, Any] | None, members: bool = False) -> Gradients:
    """The gradient rule of ``gradient=<name>`` (``backward`` when the config has no gradient group)."""
    cfg = cfg or {"name": "backward"}
    return pick(GRADIENTS, "gradient", cfg["name"])(cfg, members)
