"""A sweep's jobs from its overrides: the Cartesian grid of Hydra's ``a=1,2 b=x,y`` plus named arms.

The grid follows Hydra's BasicSweeper exactly (same job order, same override strings, so the same job folders):
every key keeps the place of its first mention, a later mention replaces its values, and the product runs
with the last key changing fastest. **Arms** are named override sets that are *not* crossed with each other
(``sgd: [optimizer=sgd, optimizer.lr=0.1]``, ``adam: [optimizer=adam, optimizer.lr=0.001]``): each arm is
crossed with the grid of the remaining keys (typically the seeds), and each of its jobs carries ``arm=<name>``.
Only Hydra's public override parser types are used here; composing and checking the jobs is the sweeper's part.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hydra.core.override_parser.types import Override

from tricklab.errors import ConfigError

ARM_KEY = "arm"  # the top-level config key each job of an arm sets to the arm's name (recorded in metrics.json)


@dataclass(frozen=True)
class Job:
    """One job of a sweep: its overrides, in the order Hydra would give them, and its arm (None outside arms)."""

    overrides: tuple[str, ...]
    arm: str | None = None


def grid_values(overrides: Sequence[Override]) -> dict[str, list[str]]:
    """Key -> its ``key=value`` strings, in first-mention order (a later mention of a key replaces its values)."""
    values: dict[str, list[str]] = {}
    for override in overrides:
        key = override.get_key_element()
        if not override.is_sweep_override():
            values[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            values[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            raise ConfigError(
                f"{override.input_line} is a {override.value_type.name.lower().replace('_', ' ')}, which a grid "
                f"cannot expand; a grid takes lists (a=1,2,3), choice(...) and range(...); use an interval with "
                f"a search sweeper such as hparams_search=optuna."
            )
    return values


def arm_overrides(arms: Mapping[str, Sequence[str]], parse) -> dict[str, dict[str, str]]:
    """Each arm's overrides as key -> ``key=value``, parsed with ``parse`` (Hydra's parser); refuses sweeps in
    an arm (an arm is one setting) and arms with no overrides."""
    parsed: dict[str, dict[str, str]] = {}
    for name, lines in arms.items():
        if isinstance(lines, str) or not lines:
            raise ConfigError(f"hydra.sweeper.arms.{name}={lines!r} is not allowed; an arm must be a non-empty list "
                              f"of overrides, e.g. [optimizer=sgd, optimizer.lr=0.1].")
        parsed[name] = {}
        for override in parse([str(line) for line in lines]):
            if override.is_sweep_override():
                raise ConfigError(f"hydra.sweeper.arms.{name} holds the sweep {override.input_line}; an arm is one "
                                  f"setting: give each value its own arm, or sweep the key outside the arms.")
            key = override.get_key_element()
            parsed[name][key] = f"{key}={override.get_value_element_as_str()}"
    return parsed


def expand(overrides: Sequence[Override], arms: Mapping[str, Mapping[str, str]] | None = None) -> list[Job]:
    """Every job of the sweep: without arms, the grid (BasicSweeper's order); with arms, arm after arm, each
    crossed with the grid of the keys no arm sets. A key both swept and set by an arm is refused (which wins
    would be a guess)."""
    values = grid_values(overrides)
    if not arms:
        return [Job(tuple(combo)) for combo in itertools.product(*values.values())]
    armed = {key for arm in arms.values() for key in arm}
    clash = sorted(key for key in armed if key in values and len(values[key]) > 1 or key == ARM_KEY)
    if clash:
        raise ConfigError(f"{', '.join(clash)} {'is' if len(clash) == 1 else 'are'} set by hydra.sweeper.arms and "
                          f"also swept (or the reserved key {ARM_KEY}); a key is either swept or set per arm, "
                          f"not both: move its values into the arms or out of them.")
    rest = {key: vals for key, vals in values.items() if key not in armed}
    jobs = []
    for name, arm in arms.items():
        for combo in itertools.product(*rest.values()):
            jobs.append(Job((*arm.values(), *combo, f"{ARM_KEY}={name}"), name))
    return jobs


def batches(jobs: Sequence[Job], size: int | None) -> list[list[Job]]:
    """``jobs`` cut into launcher batches of ``size`` (None: one batch)."""
    if size is None or size < 1:
        return [list(jobs)]
    return [list(jobs[i:i + size]) for i in range(0, len(jobs), size)]
