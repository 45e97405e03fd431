"""The Hydra task function, ``main``: ``python train.py`` (and ``python -m tricklab.train``, ``tricklab train``)
runs it for one run, and every launcher for each job of a sweep, importing it by this module's name, which is
also the jobs' name (``train.log``). What a run does is tricklab.run's; here the job's context is put together,
with the search trial it reports to, if any (the sweep's side, which the run itself does not import).

Heavy libraries (torch, Lightning, W&B) are imported only once a run starts, so ``--help``, ``--cfg`` and config
errors come back in well under a second.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from tricklab.config import CONF_DIR, register_resolvers
from tricklab.run.context import RunContext, context_of
from tricklab.run.job import run_job
from tricklab.run.prepare import preload

# A launcher's worker calls its task module's ``preload`` as it starts (tricklab.launch.worker).
__all__ = ["cli", "main", "preload"]

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    """``python train.py [overrides]``: one run; returns its ``objective`` (what a sweeper optimises)."""
    from tricklab.launch.faults import launching_sweep_fault  # a job the basic launcher runs stops its sweep

    return run_job(cfg, context_from_hydra(), sweep_fault=launching_sweep_fault)


def context_from_hydra() -> RunContext:
    """The RunContext of the job Hydra is running now."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    ctx = context_of(hc, Path(hc.runtime.output_dir), multirun)
    if multirun:
        ctx.trial = search_trial(hc)
    return ctx


def search_trial(hydra_cfg: DictConfig):
    """The TrialReporter of a job of ``hparams_search=optuna``, or None for any other job."""
    from tricklab.search.trial import link_from_hydra

    link = link_from_hydra(hydra_cfg)
    if link is None:
        return None
    from tricklab.callbacks.pruning import TrialReporter

    return TrialReporter(link)


def cli() -> None:
    """``python train.py``: the pre-flight checks of the command line (tricklab.run.preflight), then Hydra, stopping
    on SIGTERM as on Ctrl-C (tricklab.signals)."""
    from tricklab.run.preflight import preflight
    from tricklab.signals import exit_like_a_shell

    preflight(sys.argv[1:])
    with exit_like_a_shell():
        main()


if __name__ == "__main__":  # python -m tricklab.train: run tricklab.train itself, not this __main__ copy, so that
    from tricklab.train import cli as _cli  # launchers' job processes import the task function by its module name

    _cli()
