"""Every use of a library's private API, one small function each, so that a library upgrade breaks here (and in
tests/test_internals.py, which fails loudly when a library changes one) rather than in the middle of tricklab.
Use these functions, never the private names themselves.

Lightning (pinned <2.7 in pyproject.toml):
- ``count_optimizer_step``: what ``LightningOptimizer.step`` does around the update to count
  ``trainer.global_step``, without its per-step dispatch through strategy and precision plugin (the module's
  plain fp32 path calls torch's ``optimizer.step()`` itself).
- ``checkpoint_contents``: the dict ``trainer.save_checkpoint`` would write, kept in memory (RunCheckpoints holds
  a best epoch until its next write); Lightning offers only the write to a file.
- ``early_stopping_says_stop``: ``EarlyStopping``'s decision for one value, without stopping a trainer (each
  member of a fused pack stops alone); Lightning decides only inside its validation hooks.
- ``lightning_precisions``: the ``precision=`` values Lightning accepts, to check them before Lightning loads.

torch:
- ``foreach_lerp``: ``torch._foreach_lerp_``, one fused kernel per device and dtype group for an EMA update with
  the weight as a device tensor (torch's own EMA, ``get_ema_multi_avg_fn``, uses it; the public ``Tensor.lerp_``
  would launch one kernel per tensor).

Hydra:
- ``hydra_callbacks``: Hydra's (empty) callback runner, to build the ``HydraContext`` that ``run_job`` needs when
  a test drives a launcher without Hydra's own entry point.
- ``hydra_args_parser``: the argument parser behind ``@hydra.main``, to read a command line as Hydra will.
- ``hydra_basic_sweeper``: Hydra's BasicSweeper class, the reference the grid sweeper's job order is tested
  against (tests only).

Optuna (the [optuna] extra, pinned <6 in pyproject.toml; imported inside the function):
- ``optuna_trial``: the live ``Trial`` of a given number, built in a job's process from the study's storage
  (the trial's id through the study's private id, and the ``Trial`` constructor Optuna does not mean for users).
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

# --- Lightning -------------------------------------------------------------------------------------------


def count_optimizer_step(optimizer: Any, update: Callable[[], Any]) -> Any:
    """Run ``update()`` (the torch optimizer's step) counted as one optimizer step of the trainer, as
    ``LightningOptimizer.step`` would; ``optimizer`` is the LightningOptimizer (``module.optimizers()``)."""
    optimizer._on_before_step()
    result = update()
    optimizer._on_after_step()
    return result


def checkpoint_contents(trainer: Any) -> dict[str, Any]:
    """The checkpoint ``trainer.save_checkpoint(path, weights_only=False)`` would write now (live tensors)."""
    return trainer._checkpoint_connector.dump_checkpoint(weights_only=False)


def early_stopping_says_stop(early_stopping: Any, value: float) -> bool:
    """Feed this epoch's ``value`` of the monitored metric to Lightning's ``EarlyStopping`` rule (its patience,
    min_delta, mode and finiteness check, and its counters) without letting it stop a trainer: True when it would
    stop. Used per member of a fused pack, where stopping means freezing one member."""
    import torch

    should_stop, _ = early_stopping._evaluate_stopping_criteria(torch.tensor(float(value)))
    return bool(should_stop)


def lightning_precisions() -> tuple:
    """Every ``precision=`` value Lightning accepts (lightning_fabric.connector's private Literal types)."""
    from lightning_fabric import connector

    return tuple(value for alias in ("_PRECISION_INPUT_STR", "_PRECISION_INPUT_STR_ALIAS", "_PRECISION_INPUT_INT")
                 for value in typing.get_args(getattr(connector, alias)))


# --- torch -------------------------------------------------------------------------------------------------


def foreach_lerp(targets: list[Any], ends: list[Any], weight: Any) -> None:
    """targets[i] ← targets[i] + weight·(ends[i] − targets[i]) in place, for floating tensors of one device and
    dtype; ``weight`` a 0-dim tensor on that device (no host sync) or a number."""
    import torch

    torch._foreach_lerp_(targets, ends, weight)


# --- Hydra -----------------------------------------------------------------------------------------------


def hydra_callbacks() -> Any:
    """Hydra's callback runner with no callbacks configured."""
    from hydra._internal.callbacks import Callbacks

    return Callbacks()


def hydra_args_parser() -> argparse.ArgumentParser:
    """The argument parser behind ``@hydra.main`` (hydra._internal.utils), to read a command line as Hydra will
    before Hydra runs."""
    from hydra._internal.utils import get_args_parser

    return get_args_parser()


def hydra_basic_sweeper() -> type:
    """Hydra's BasicSweeper (hydra._internal.core_plugins), whose ``split_arguments`` gives its grid."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    return BasicSweeper


# --- Optuna ------------------------------------------------------------------------------------------------

def optuna_trial(study: optuna.Study, number: int) -> optuna.trial.Trial:
    """The live ``Trial`` number ``number`` of ``study``, built in a process other than the one that asked for it.

    A search's job runs in a worker process and reports to its trial there (``Trial.report``, ``should_prune``,
    ``set_user_attr``). Optuna hands out a Trial only from ``Study.ask``/``optimize``; its constructor takes the
    storage's trial id, which only the storage (through the study's private id) maps from the trial's number.
    The Trial reads the trial from storage when built, so build a new one to see what other processes wrote.
    """
    from optuna.trial import Trial

    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return Trial(study, trial_id)
