"""The private library API tricklab uses (tricklab.internals): each test fails loudly when the library changes it."""

from __future__ import annotations

import inspect

import pytest

from tricklab.internals import optuna_trial


def test_optuna_trial_is_built_from_its_number_in_another_process_view(tmp_path):
    optuna = pytest.importorskip("optuna", reason="pip install -e '.[optuna]'")
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    # The constructor tricklab calls: Trial(study, trial_id); its id maps from the number through the storage.
    assert list(inspect.signature(optuna.trial.Trial.__init__).parameters) == ["self", "study", "trial_id"]
    path = str(tmp_path / "journal")
    asker = optuna.create_study(study_name="s", storage=JournalStorage(JournalFileBackend(path)),
                                direction="maximize")
    asker.ask()
    asked = asker.ask()
    # A job's view: the same study loaded through a storage of its own, as a worker process does.
    job_study = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(path)),
                                  pruner=optuna.pruners.NopPruner())
    trial = optuna_trial(job_study, asked.number)
    assert trial.number == asked.number and trial.params == asked.params
    trial.report(0.25, 1)
    trial.set_user_attr("seen", True)
    assert trial.should_prune() is False
    frozen = asker.trials[asked.number]  # what the job wrote is in the asker's study
    assert frozen.intermediate_values == {1: 0.25} and frozen.user_attrs == {"seen": True}
