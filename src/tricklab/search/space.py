"""A search space from YAML (``hydra.sweeper.params``), in Hydra's override grammar, as Optuna distributions.

    optimizer.lr: tag(log, interval(1e-4, 1e-1))   # float, log scale
    optimizer.momentum: interval(0.8, 0.99)        # float, linear
    architecture.width: int(interval(32, 256))     # integer (tag(log, int(interval(...))) for a log scale)
    architecture.depth: range(1, 5)                # integers 1..4 (range(lo, hi, step): hi excluded, as Python's)
    init: choice(glorot, he)                       # categorical: values, or a config group's choices
    seed: 3                                        # a plain value: fixed for every trial

Imports Optuna only where a distribution is built.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Glob, IntervalSweep, RangeSweep
from hydra.errors import HydraException

from tricklab.errors import ConfigError

FORMS = ("tag(log, interval(lo, hi)), interval(lo, hi), int(interval(lo, hi)), range(lo, hi[, step]), "
         "choice(a, b, ...) or a plain value")
CATEGORY_TYPES = (str, int, float, bool, type(None))


@dataclass
class SearchSpace:
    """Optuna distributions by override key, the fixed overrides, and each parameter's spec as written."""

    distributions: dict[str, Any] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)
    specs: dict[str, str] = field(default_factory=dict)

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """The command-line overrides of a trial with these sampled values (fixed ones first)."""
        return [*self.fixed, *(f"{key}={format_value(params[key])}" for key in self.distributions)]

    def extremes(self) -> dict[str, list[Any]]:
        """Per parameter the values whose configs must be valid for every sample to be: the ends of a range,
        every choice."""
        from optuna.distributions import CategoricalDistribution

        return {key: list(d.choices) if isinstance(d, CategoricalDistribution) else [d.low, d.high]
                for key, d in self.distributions.items()}

    def check_ends(self, check: Callable[[list[str]], None]) -> None:
        """Run ``check`` (compose and validate a job config: ConfigError if it fails) on each of ``extremes``, so
        that a range reaching a value tricklab refuses is reported before any trial runs."""
        for key, values in self.extremes().items():
            for value in values:
                try:
                    check([*self.fixed, f"{key}={format_value(value)}"])
                except ConfigError as err:
                    raise ConfigError(f"hydra.sweeper.params.{key}={self.specs[key]} reaches "
                                      f"{key}={format_value(value)}, which is not allowed: {err}") from None

    def grid(self) -> dict[str, list[Any]]:
        """Every value of every parameter, for the grid sampler; ConfigError for a continuous parameter."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        grid = {}
        for key, dist in self.distributions.items():
            if isinstance(dist, CategoricalDistribution):
                grid[key] = list(dist.choices)
            elif isinstance(dist, (IntDistribution, FloatDistribution)) and dist.step is not None and not dist.log:
                count = round((dist.high - dist.low) / dist.step) + 1
                grid[key] = [dist.low + i * dist.step for i in range(count)]
            else:
                raise ConfigError(
                    f"hydra.sweeper.sampler=grid but hydra.sweeper.params.{key}={self.specs[key]} is continuous; "
                    f"the grid sampler needs every parameter as choice(a, b, ...) or range(lo, hi[, step])."
                )
        return grid


def parse_space(params: dict[str, Any], arguments: list[str],
                options: Callable[[str], list[str]] | None = None) -> SearchSpace:
    """The space of ``params`` (the YAML) plus the command line's ``arguments``: a sweep there (``init=glorot,he``,
    ``optimizer.lr=interval(...)``) becomes a parameter, a plain override stays fixed; ``glob(...)`` over a config
    group becomes the choice of the group's options it matches (``options(group)``: the group's choices).
    ConfigError for a form or a range that cannot be searched, naming the key, its value and what is allowed."""
    space = SearchSpace()
    parser = OverridesParser.create()
    lines = [f"{key}={value}" for key, value in params.items()] + list(arguments)
    for line in lines:
        try:
            (override,) = parser.parse_overrides([line])
        except HydraException as err:
            raise ConfigError(f"hydra.sweeper.params: {line} is not an override Hydra can read ({err}); "
                              f"a parameter takes one of the forms {FORMS}.") from None
        key = override.get_key_element()
        if not override.is_sweep_override():
            space.fixed.append(line)
            continue
        space.specs[key] = line.split("=", 1)[1]
        space.distributions[key] = _distribution(key, space.specs[key], _globbed(key, space.specs[key],
                                                                                 override.value(), options))
    return space


def _globbed(key: str, spec: str, sweep: Any, options: Callable[[str], list[str]] | None) -> Any:
    """A ``glob(...)`` over a config group as the choice of the group's options it matches (Hydra's basic
    sweeper expands it so); any other sweep as it is."""
    if not isinstance(sweep, Glob):
        return sweep
    choices = options(key) if options is not None else []
    if not choices:
        raise ConfigError(f"hydra.sweeper.params.{key}={spec} cannot be searched: glob() picks choices of a config "
                          f"group, and {key} is not a config group (or has no choices); a parameter takes one of "
                          f"the forms {FORMS}.")
    matched = sweep.filter(sorted(choices))
    if not matched:
        raise ConfigError(f"hydra.sweeper.params.{key}={spec} cannot be searched: it matches none of the choices of "
                          f"the config group {key} ({', '.join(sorted(choices))}); give a pattern that matches at "
                          f"least one, or choice(a, b, ...).")
    return ChoiceSweep(list=matched)


def _distribution(key: str, spec: str, sweep: Any) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    def bad(why: str) -> ConfigError:
        return ConfigError(f"hydra.sweeper.params.{key}={spec} cannot be searched: {why}; a parameter takes one of "
                           f"the forms {FORMS}, with lo < hi (and lo > 0 on a log scale).")

    if not isinstance(sweep, (ChoiceSweep, IntervalSweep, RangeSweep)):
        raise bad(f"{type(sweep).__name__} is not a form a search can sample")
    log = "log" in sweep.tags
    if isinstance(sweep, ChoiceSweep):
        if not sweep.list or not all(isinstance(v, CATEGORY_TYPES) for v in sweep.list):
            raise bad("choice() needs one or more plain values (strings, numbers, true/false, null)")
        return CategoricalDistribution(list(sweep.list))
    if isinstance(sweep, IntervalSweep):
        low, high = sweep.start, sweep.end
        step = None
    elif isinstance(sweep, RangeSweep):
        if sweep.step <= 0 or sweep.start >= sweep.stop:
            raise bad("range(lo, hi, step) needs lo < hi and step > 0")
        step = sweep.step
        low, high = sweep.start, sweep.start + step * math.ceil((sweep.stop - sweep.start) / step - 1)
    if not low < high:
        raise bad(f"the range's low end {low} is not below its high end {high}")
    if log and low <= 0:
        raise bad(f"a log scale needs a low end > 0, not {low}")
    if log and step is not None:
        raise bad("a stepped range cannot be on a log scale")
    if all(isinstance(v, int) for v in (low, high, step or 1)):
        return IntDistribution(int(low), int(high), log=log, step=int(step or 1))
    return FloatDistribution(float(low), float(high), log=log, step=step)


def format_value(value: Any) -> str:
    """A sampled value as an override's value (null for None; floats in full precision)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)
