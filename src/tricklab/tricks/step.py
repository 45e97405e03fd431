"""The tricks of the optimizer step, built once from a run's config into one bundle: ``StepTricks``, the one
argument of ``ClassifierModule`` and of a fused pack's ``PackModule``.

``build_step_tricks(cfg, members)`` builds the stage of each step group of the config (``STEP_GROUPS``: the
group, the field of ``StepTricks`` it fills, its builder, which picks the choice from that group's registry);
the optimizer and the schedule need the model and the trainer, so they are built when training starts
(``ClassifierModule.configure_optimizers``) from their sections kept in ``config``. ``config`` holds every section
the bundle was built from as plain dicts: what a checkpoint saves as the module's hyper-parameters, the same for
an unfused run and for a member of a pack. A trick of a new step group is one entry in ``STEP_GROUPS``, one field
here and the line of ``optimizer_step_on`` that calls it (docs/adding-a-trick.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tricklab.tricks.clip import Clip, build_clip, needs_norm
from tricklab.tricks.gradient import Gradients, build_gradients
from tricklab.tricks.regularization import build_penalty

# config group -> (the StepTricks field it fills, builder(its config section or None, members))
STEP_GROUPS: dict[str, tuple[str, Callable[[dict[str, Any] | None, bool], Any]]] = {
    "gradient": ("gradients", build_gradients),
    "regularization": ("penalty", build_penalty),
    "clip": ("clip", build_clip),
}
BUILT_WHEN_TRAINING_STARTS = ("optimizer", "scheduler")


@dataclass(frozen=True)
class StepTricks:
    """What the step does at its trick stages; ``members``: built for a fused pack (dimension 0 = member)."""

    gradients: Gradients  # g = ∂objective/∂θ: one backward pass, or a trick's passes
    penalty: Callable[[nn.Module], torch.Tensor] | None  # λ₁Σ|w| + λ₂/2·Σw², or None
    clip: Clip | None  # clip(params, grads, norm), or None
    norms_needed: bool  # ‖g‖₂ before clipping every step: asked for (callbacks.grad_norm), or the clip reads it
    members: bool
    config: dict[str, Any]  # the sections built from, and track_grad_norm (the module's hyper-parameters)

    @property
    def grads_needed(self) -> bool:
        """Whether the step collects the gradients after the gradient stage (to measure or clip them)."""
        return self.norms_needed or self.clip is not None

    @property
    def optimizer(self) -> dict[str, Any]:
        return self.config["optimizer"]

    @property
    def scheduler(self) -> dict[str, Any]:
        return self.config["scheduler"]


def build_step_tricks(cfg: Mapping[str, Any], members: bool = False) -> StepTricks:
    """The step's tricks for the run config ``cfg`` (plain sections: ``optimizer`` required, a missing
    ``scheduler`` is none and a missing step group its no-op choice; ``callbacks.grad_norm`` asks for ‖g‖₂)."""
    sections = {group: cfg.get(group) for group in (*BUILT_WHEN_TRAINING_STARTS, *STEP_GROUPS)}
    sections["scheduler"] = sections["scheduler"] or {"name": "none"}
    track_grad_norm = bool((cfg.get("callbacks") or {}).get("grad_norm", False))
    built = {field: build(sections[group], members) for group, (field, build) in STEP_GROUPS.items()}
    return StepTricks(**built, norms_needed=track_grad_norm or needs_norm(sections["clip"]), members=members,
                      config={**sections, "track_grad_norm": track_grad_norm})
