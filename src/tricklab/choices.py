"""The names a config group accepts, and the one way a wrong name is refused.

A group's choices are its YAML files, ``conf/<group>/*.yaml`` (that is Hydra's list); in the code each name maps
to what it builds, in a registry beside the builder (``INITS``, ``OPTIMIZERS``, ...). ``pick`` and ``check``
refuse a name a registry lacks (reached by ``<group>.name=...`` or a direct call), and
``tests/test_choices.py`` holds every registry to its group's folder, so the two lists cannot drift apart.
This module imports neither torch nor Lightning: config checks use it before anything heavy is loaded.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TypeVar

from tricklab.errors import ConfigError

T = TypeVar("T")

# Activation name -> the torch.nn class that computes it (by name, so that config checks need no torch).
ACTIVATIONS: dict[str, str] = {
    "relu": "ReLU",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "gelu": "GELU",
    "leaky_relu": "LeakyReLU",
    "elu": "ELU",
    "selu": "SELU",
}

# data.scale: how inputs are scaled by the training split's statistics (tricklab.data.scaling).
SCALES = ("raw", "unit", "symmetric", "standardize", "standardize_channel")


def check(known: Collection[str], key: str, name: str) -> None:
    """Raise a ConfigError naming ``key=name`` and the known names unless ``name`` is one of them."""
    if name not in known:
        raise ConfigError(f"{key}={name} is unknown; known: {', '.join(known)}.")


def pick(registry: Mapping[str, T], key: str, name: str) -> T:
    """``registry[name]``, or the ConfigError of ``check``."""
    check(registry, key, name)
    return registry[name]
