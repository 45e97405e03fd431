"""Which keys an override may name: typos are refused with the keys that exist and the nearest one.

Hydra refuses an unknown key with advice to add a ``+``, and takes any ``+key=value`` silently, so
``+data.batchsize=64`` would train with the default batch size. tricklab's rule: an override names a key some
config defines; ``+`` adds a key only where a library takes extra keyword arguments that tricklab passes
through (``optimizer.*`` to the torch.optim class, ``trainer.*`` to Lightning's Trainer, each checked against
that signature when the run starts) and under ``hydra.`` (Hydra's own settings). ``++`` (set or add) follows the
same rule where it would add a key; ``~`` (delete) is refused outside ``hydra.``: tricklab reads every key its
configs define, so a deleted one fails the run later with a KeyError. Checked on the config composed from the
group choices alone, before any value.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence

from hydra.core.override_parser.types import Glob, Override
from omegaconf import DictConfig, OmegaConf

from tricklab.choices import unknown_choice
from tricklab.config import CONF_DIR

# Where ``+key=value`` may add a key: library pass-through, and Hydra's settings.
PASS_THROUGH = ("optimizer.", "trainer.", "hydra.")


def is_group(key: str) -> bool:
    """``key`` selects a config group (``optimizer``, ``hydra/launcher``), not a value."""
    return "/" in key or (CONF_DIR / key.split("@")[0]).is_dir()


def group_choices(overrides: Iterable[Override]) -> list[str]:
    """The group selections among ``overrides`` as single overrides (a swept group: its first choice), to
    compose the config whose keys the other overrides must name."""
    chosen = []
    for override in overrides:
        if override.is_delete() or not is_group(override.key_or_group) or override.is_hydra_override():
            continue
        if not override.is_sweep_override():
            chosen.append(override.input_line)
        elif override.is_discrete_sweep():
            chosen.append(f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}")
    return chosen


def choice_problems(overrides: Iterable[Override], options: Callable[[str], Sequence[str]]) -> list[str]:
    """One paragraph per config a group override chooses that its group lacks (``optimizer=adma``, or one value
    of a sweep ``optimizer=adam,adma``); ``options(group)``: the group's choices as Hydra lists them. Checked
    first, because Hydra cannot compose the config the other checks read without every choice."""
    found = []
    for override in overrides:
        group = override.key_or_group
        if override.is_delete() or not is_group(group):
            continue
        for name in _chosen(override):
            if name not in (known := options(group)):
                found.append(unknown_choice(override.input_line, group, name, known))
    return found


def _chosen(override: Override) -> list[str]:
    """The configs a group override names: its value, or each value of a listed sweep. None for ``null`` (no
    config), a list (several configs of one group: Hydra checks them) or a glob (it picks only what exists)."""
    value = override.value()
    if override.is_sweep_override():
        return list(override.sweep_string_iterator()) if override.is_choice_sweep() and not isinstance(
            value, Glob) else []
    return [] if value is None or isinstance(value, (list, dict)) else [str(value)]


def key_problems(cfg: DictConfig, overrides: Sequence[Override]) -> list[str]:
    """One paragraph per override naming a key ``cfg`` (composed from the group choices) lacks, or adding one
    with ``+`` outside PASS_THROUGH."""
    found = []
    for override in overrides:
        key = override.key_or_group
        if override.is_hydra_override():
            continue
        if override.is_delete():
            found.append(_deleted(cfg, key, override.input_line))
            continue
        if is_group(key):
            continue
        exists = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False) is not _ABSENT
        if override.is_add() or (override.is_force_add() and not exists):
            if not key.startswith(PASS_THROUGH):
                found.append(_unknown(cfg, key, override.input_line, added=True))
        elif not exists:
            found.append(_unknown(cfg, key, override.input_line, added=False))
    return found


def _deleted(cfg: DictConfig, key: str, line: str | None) -> str:
    """The message for ``~key``: what to do instead (another choice of a group, another value of a key)."""
    if is_group(key):
        instead = f"choose another config of the group instead ({key}=<choice>)"
    else:
        instead = f"set it to another value instead ({key}=<value>, or null where null is allowed)"
    return (f"{line}: {key} may not be deleted: tricklab reads every group and key its configs define, so the run "
            f"would fail later without it; {instead}. Only hydra. settings may be deleted with ~.")


_ABSENT = object()


def _unknown(cfg: DictConfig, key: str, line: str | None, added: bool) -> str:
    """The message for an unknown key: the keys its parent has, the nearest match, the ``+`` rule."""
    parent, _, leaf = key.rpartition(".")
    while parent and not isinstance(OmegaConf.select(cfg, parent, default=None), DictConfig):
        parent, _, leaf = parent.rpartition(".")  # foo.bar=1: report foo, the first part that does not exist
    node = OmegaConf.select(cfg, parent) if parent else cfg
    known = [str(k) for k in node if k != leaf and k != "hydra"]  # hydra.* is Hydra's, and never a typo's target
    missing = f"{parent}.{leaf}" if parent else leaf
    where = f"{parent}{_choice(cfg, parent)}" if parent else "the top level of the config"
    nearest = difflib.get_close_matches(leaf, known, n=1, cutoff=0.6)
    hint = f" Did you mean {parent + '.' if parent else ''}{nearest[0]}?" if nearest else ""
    plus = (" A leading + adds a key only under optimizer., trainer. (passed to the library, which must take it) "
            "and hydra.; tricklab refuses new keys elsewhere, so a typo cannot pass unnoticed." if added else "")
    if not added and key.startswith(PASS_THROUGH[:2]):  # maybe a library argument tricklab does not name
        plus = f" If {leaf} is an argument of the library itself, pass it through with +{key}=<value>."
    return (f"{line}: {missing} is not a key of {where}; its keys are: {', '.join(known) or 'none'}."
            f"{hint}{plus}")


def _choice(cfg: DictConfig, group: str) -> str:
    """`` (adam)``: the chosen config of a group as its name says, for the message; "" when it has no name."""
    name = OmegaConf.select(cfg, f"{group}.name", default=None)
    return f" ({name})" if isinstance(name, str) else ""
