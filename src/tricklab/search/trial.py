"""A job's side of its search trial: it reports its validation accuracy each epoch and asks whether to stop.

With ``seeds_per_trial=K`` a trial is K jobs (one per seed) and what the trial reports for epoch e is the mean
of its K seeds' values at epoch e. Each seed job writes its value into the trial (user attribute
``val_acc/<e>/<seed index>``), reads the trial back, and when all K values of epoch e are there reports their
mean and asks the pruner; a pruning decision is kept in the trial (``pruned_at``) and every seed job still
training stops at its next epoch. A seed whose siblings have not reached epoch e yet trains on: with K seeds
running side by side (the sweeper starts a trial's seeds one after another on free workers) the decision comes
at the same epoch as for one seed; a seed that trains alone, after its siblings finished, is pruned as it goes.
The job finds its trial from ``hydra.job.env_set`` (TRIAL_ENV, SEED_ENV), which the sweeper sets per job.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from tricklab.search.study import PRUNED_AT, SearchSettings, build_pruner, settings_from

TRIAL_ENV = "TRICKLAB_TRIAL"             # the trial's number
SEED_ENV = "TRICKLAB_TRIAL_SEED_INDEX"  # which of the trial's seeds this job trains (0..K-1)
MONITOR = "val/acc"                     # what a job reports, the per-epoch form of run.job.objective


def value_key(epoch: int, seed_index: int) -> str:
    """The trial user attribute holding one seed's value at one epoch."""
    return f"val_acc/{epoch}/{seed_index}"


class TrialLink:
    """One job's connection to its trial, through the study's storage (what tricklab.callbacks.pruning reports to)."""

    monitor = MONITOR

    def __init__(self, settings: SearchSettings, sweep_dir: Path, number: int, seed_index: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.number, self.seed_index, self.seeds = number, seed_index, settings.seeds_per_trial
        # The job never samples: a random sampler keeps Trial construction free of the search sampler's work.
        self.study = optuna.load_study(study_name=settings.study_name, storage=settings.storage_url(sweep_dir),
                                       sampler=optuna.samplers.RandomSampler(), pruner=build_pruner(settings))

    def report(self, epoch: int, value: float) -> bool:
        """Record this seed's ``value`` at ``epoch``; True when the trial is to stop (pruned)."""
        from tricklab.internals import optuna_trial

        optuna_trial(self.study, self.number).set_user_attr(value_key(epoch, self.seed_index), value)
        trial = optuna_trial(self.study, self.number)  # read back: the other seeds' values, a pruning decision
        attrs = trial.user_attrs
        if PRUNED_AT in attrs:
            return True
        values = [attrs.get(value_key(epoch, i)) for i in range(self.seeds)]
        if any(v is None for v in values):
            return False
        with warnings.catch_warnings():  # two seeds finishing epoch e together both report it: Optuna keeps one
            warnings.simplefilter("ignore")
            trial.report(sum(values) / len(values), epoch)
        if trial.should_prune():
            trial.set_user_attr(PRUNED_AT, epoch)
            return True
        return False


def link_from_hydra(hydra_cfg: Any) -> TrialLink | None:
    """The TrialLink of the job Hydra runs now, or None when it is not a search trial."""
    env = hydra_cfg.job.env_set
    if TRIAL_ENV not in env:
        return None
    return TrialLink(settings_from(hydra_cfg.sweeper), Path(hydra_cfg.sweep.dir), int(env[TRIAL_ENV]),
                     int(env[SEED_ENV]))
