"""The options each optimizer=<name> passes to its torch.optim class, copied so that a ``+optimizer.<name>=...``
the class does not take is refused with the other values, before torch is imported and before any folder exists
(it used to fail only in configure_optimizers, after the run had written its metrics.json).

tests/test_internals.py compares each list with torch's own signatures and fails when torch changes one.
"""

from __future__ import annotations

from collections.abc import Iterable

_SGD = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize", "foreach", "differentiable", "fused")
_ADAM = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach", "capturable", "differentiable",
         "fused")
# optimizer name -> the keyword arguments of its class (less ``params`` and what the variant fixes itself:
# nesterov's nesterov=True), as tricklab.tricks.optim.OPTIMIZERS builds it.
OPTIMIZER_OPTIONS: dict[str, tuple[str, ...]] = {
    "sgd": _SGD,
    "momentum": _SGD,
    "nesterov": tuple(o for o in _SGD if o != "nesterov"),
    "adagrad": ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps", "foreach", "maximize",
                "differentiable", "fused"),
    "rmsprop": ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "capturable", "foreach", "maximize",
                "differentiable"),
    "adam": (*_ADAM, "decoupled_weight_decay"),
    "adamw": _ADAM,
}
# Keys of an optimizer's config that tricklab reads itself, not passed to torch.
OWN_KEYS = ("name", "decay_norm_and_bias")


def unknown_options_problem(name: str, keys: Iterable[str]) -> str | None:
    """Why optimizer=``name`` cannot take the options ``keys`` (its config's keys), or None when it takes them all
    (or ``name`` is unknown: its choice is checked elsewhere)."""
    allowed = OPTIMIZER_OPTIONS.get(name)
    if allowed is None:
        return None
    unknown = sorted(set(keys) - set(OWN_KEYS) - set(allowed))
    if not unknown:
        return None
    own = ", ".join(key for key in OWN_KEYS if key != "name")
    return (f"optimizer={name} has no option {', '.join(unknown)} (optimizer.{unknown[0]} cannot be passed to its "
            f"torch.optim class); its options are {', '.join(allowed)} (and {own}).")
