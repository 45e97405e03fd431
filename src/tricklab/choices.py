"""The names a config group accepts, and the one way a wrong name is refused.

A group's choices are its YAML files, ``tricklab/conf/<group>/*.yaml`` (that is Hydra's list); in the code each name
maps to what it builds, in a registry beside the builder (``INITS``, ``OPTIMIZERS``, ...). ``pick`` and ``check``
refuse a name a registry lacks (reached by ``<group>.name=...`` or a direct call), and
``tests/test_choices.py`` holds every registry to its group's folder, so the two lists cannot drift apart.
A group override naming a file the group lacks (``optimizer=adma``) is refused in the same words, with the
nearest choice, before Hydra composes (``unknown_choice``, from tricklab.keys.choice_problems).
This module imports neither torch nor Lightning: config checks use it before anything heavy is loaded.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping, Sequence
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
    """Raise a ConfigError naming ``key=name``, the known names and the nearest one unless ``name`` is one of
    them."""
    if name not in known:
        match = nearest(name, known)
        hint = f" Did you mean {key}={match}?" if match else ""
        raise ConfigError(f"{key}={name} is unknown; known: {', '.join(known)}.{hint}")


def nearest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name`` (difflib), or None when none is close. Case is ignored, because a
    typed ``init=He`` is far from ``he`` by difflib's measure (half its letters differ)."""
    lowered = {k.lower(): k for k in known}
    found = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[found[0]] if found else None


def unknown_choice(line: str, group: str, name: str, known: Sequence[str]) -> str:
    """The paragraph for a group override (``line``) choosing ``name``, a config its ``group`` lacks: the group's
    choices (``known``) and the nearest one."""
    if not known:  # hydra/launchr=local: a group (it has a /) that does not exist at all
        return f"{line}: {group} is not a config group, so it has no choice {name}."
    match = nearest(name, known)
    hint = f" Did you mean {group}={match}?" if match else ""
    return f"{line}: {name} is not a choice of the config group {group}; its choices are: {', '.join(known)}.{hint}"


def pick(registry: Mapping[str, T], key: str, name: str) -> T:
    """``registry[name]``, or the ConfigError of ``check``."""
    check(registry, key, name)
    return registry[name]
