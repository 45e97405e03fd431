"""Every use of a library's private API, in one place, each with a test (tests/test_internals.py) that fails
loudly when the library changes it. Libraries are imported inside the functions: importing this module is free."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna


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
