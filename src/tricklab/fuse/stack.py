"""K networks of one architecture as one module: their parameters and buffers stacked along a new dimension 0.

``Pack(models)`` holds ``torch.func.stack_module_state(models)`` as its own parameters and buffers (so an
optimizer, a checkpoint and ``.to(device)`` see them like any module's) and runs the K networks at once with
``vmap(functional_call)``: member k computes exactly what ``models[k]`` would (its own weights, its own batch-norm
statistics), in one batched kernel per layer instead of K small ones. Elementwise optimizers (SGD, momentum,
Adagrad, RMSProp, Adam, weight decay) over the stacked tensors are then K independent optimizers.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from tricklab.tricks.regularization import penalized_weights


def slot_name(name: str) -> str:
    """A state name as an attribute name (``register_parameter`` refuses dots)."""
    return name.replace(".", "__")


class Pack(nn.Module):
    """``len(models)`` networks of identical structure, trained together; member k is ``models[k]``'s state.

    ``forward(x)`` gives each member its own batch, ``shared(x)`` every member the same one. Dropout masks are
    drawn per member (``randomness="different"``) from the pack's random stream.
    """

    def __init__(self, models: list[nn.Module]) -> None:
        super().__init__()
        params, buffers = stack_module_state(models)
        self.members = len(models)
        # A template of the architecture without storage of its own: functional_call supplies every tensor.
        self.template = [copy.deepcopy(models[0]).to("meta")]  # a list: not a submodule, so not in state_dict
        self.param_names, self.buffer_names = list(params), list(buffers)
        for name, value in params.items():
            self.register_parameter(slot_name(name), nn.Parameter(value.detach().clone()))
        for name, value in buffers.items():
            self.register_buffer(slot_name(name), value.detach().clone())
        weights = {id(w) for w in penalized_weights(models[0])}
        self.penalized_names = [n for n, p in models[0].named_parameters() if id(p) in weights]

    def member_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """(the member model's parameter name, the stacked parameter): what per-member rules read names from."""
        return [(name, getattr(self, slot_name(name))) for name in self.param_names]

    def penalized_weights(self) -> list[torch.Tensor]:
        """The stacked weights the penalty applies to (each member's Linear/Conv weights)."""
        return [getattr(self, slot_name(name)) for name in self.penalized_names]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Member k on its own batch x[k]: x (K, B, ...) → logits (K, B, C)."""
        return self._vmapped(x, in_dim=0)

    def shared(self, x: torch.Tensor) -> torch.Tensor:
        """Every member on the same batch x (B, ...) → logits (K, B, C) (evaluation)."""
        return self._vmapped(x, in_dim=None)

    def _vmapped(self, x: torch.Tensor, in_dim: int | None) -> torch.Tensor:
        state = {name: getattr(self, slot_name(name)) for name in (*self.param_names, *self.buffer_names)}
        template = self.template[0]
        if template.training != self.training:  # not a submodule: train()/eval() (and Lightning's restoring of
            template.train(self.training)       # modes, which sets .training directly) do not reach it

        def one(member_state: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
            return functional_call(template, member_state, (inputs,))

        return vmap(one, in_dims=(0, in_dim), randomness="different")(state, x)

    def member_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's state, keyed as its own model's ``state_dict`` (copies, on the pack's device)."""
        return {name: getattr(self, slot_name(name))[k].detach().clone()
                for name in (*self.param_names, *self.buffer_names)}

    @torch.no_grad()
    def load_member(self, k: int, state: dict[str, torch.Tensor]) -> None:
        """Put ``state`` (a member model's ``state_dict``) into slot k."""
        for name in (*self.param_names, *self.buffer_names):
            getattr(self, slot_name(name))[k].copy_(state[name])
