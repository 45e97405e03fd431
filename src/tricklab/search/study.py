"""The Optuna study of a search: its settings, sampler, pruner and storage, and the bookkeeping of a resume.

The same settings build the study in the sweeper (which asks and tells) and in every job (which reports each
epoch and asks whether to stop): both must use the same storage and pruner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tricklab.errors import ConfigError

JOURNAL_FILE = "optuna.journal"  # the study, in the sweep folder, when hydra.sweeper.storage is null
SEARCH_FILE = "search.json"  # in the sweep folder: where the study is and what was searched (for the report)
SAMPLERS = ("tpe", "gp", "cmaes", "random", "qmc", "grid")
PRUNERS = ("median", "successive_halving", "hyperband", "none")
# Trial user attributes the search sets.
RETRY_OF = "retry_of"  # the number of the stale trial whose parameters this trial runs again
PRUNED_AT = "pruned_at"  # the epoch at which the pruner stopped the trial


@dataclass
class SearchSettings:
    """``hydra.sweeper.*``: what to search, how to sample and prune, where the study lives
    (tricklab/conf/hparams_search/optuna.yaml documents each; the sweeper's config schema is this dataclass)."""

    study_name: str = "tricklab"
    storage: str | None = None
    n_trials: int = 20
    sampler: str = "tpe"
    seed: int | None = 0
    n_startup_trials: int = 5
    pruner: str = "median"
    warmup_epochs: int = 1
    seeds_per_trial: int = 1
    retry_running: bool = True
    n_jobs: int = 1
    enqueue: list[Any] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """ConfigError naming the first setting that is not allowed."""
        allowed = {"sampler": SAMPLERS, "pruner": PRUNERS}
        for key, choices in allowed.items():
            if getattr(self, key) not in choices:
                raise ConfigError(f"hydra.sweeper.{key}={getattr(self, key)} is not allowed; {key} must be one of "
                                  f"{', '.join(choices)}.")
        for key, least in (("n_trials", 1), ("seeds_per_trial", 1), ("n_startup_trials", 0), ("warmup_epochs", 0),
                           ("n_jobs", 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"hydra.sweeper.{key}={value} is not allowed; {key} must be an integer ≥ {least}.")
        seed = self.seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32):
            raise ConfigError(f"hydra.sweeper.seed={seed!r} is not allowed; the sampler's seed must be null or an "
                              f"integer in [0, 2**32) (NumPy's seeds), e.g. 0.")
        if not isinstance(self.study_name, str) or not self.study_name.strip():
            raise ConfigError(f"hydra.sweeper.study_name={self.study_name!r} is not allowed; it must be a non-empty "
                              f"string (the study's name in its storage).")
        if not isinstance(self.retry_running, bool):
            raise ConfigError(f"hydra.sweeper.retry_running={self.retry_running!r} is not allowed; it must be true "
                              f"or false.")
        if not isinstance(self.params, dict):
            raise ConfigError(f"hydra.sweeper.params={self.params!r} is not allowed; it must map keys to what is "
                              f"searched, e.g. {{optimizer.lr: tag(log, interval(1e-4, 1e-1))}}.")
        from tricklab.search.guard import storage_problem

        if why := storage_problem(self.storage):
            raise ConfigError(why)

    def storage_url(self, sweep_dir: Path) -> Any:
        """The storage the study lives in: ``storage`` when set (any URL Optuna takes: sqlite:///..., a
        PostgreSQL URL...), else a journal file in the sweep folder."""
        if self.storage:
            return str(self.storage)
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(str(Path(sweep_dir) / JOURNAL_FILE)))


def build_sampler(settings: SearchSettings, grid: dict[str, list[Any]] | None = None):
    """The Optuna sampler ``settings.sampler`` (``grid`` is the grid sampler's search space)."""
    import optuna.samplers as s

    seed, startup = settings.seed, settings.n_startup_trials
    if settings.sampler == "tpe":  # constant_liar: trials running in parallel are not sampled on top of each other
        return s.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)
    if settings.sampler == "gp":
        return s.GPSampler(seed=seed, n_startup_trials=startup)
    if settings.sampler == "cmaes":
        return s.CmaEsSampler(seed=seed, n_startup_trials=startup)
    if settings.sampler == "random":
        return s.RandomSampler(seed=seed)
    if settings.sampler == "qmc":
        return s.QMCSampler(seed=seed)
    return _ask_tell_grid(grid or {}, seed)


def _ask_tell_grid(grid: dict[str, list[Any]], seed: int | None):
    """Optuna's grid sampler, less its ``Study.stop()`` once the grid is covered: outside ``optimize`` that raises
    (after the trial is stored); the search stops at the grid's size itself."""
    from optuna.samplers import GridSampler

    class AskTellGridSampler(GridSampler):
        def after_trial(self, study, trial, state, values) -> None:
            pass

    return AskTellGridSampler(grid, seed=seed)


def build_pruner(settings: SearchSettings):
    """The Optuna pruner ``settings.pruner``. The median pruner waits for ``n_startup_trials`` finished trials and
    ``warmup_epochs`` epochs of the trial itself; successive halving and Hyperband start at ``warmup_epochs``
    (at least 1) and learn the longest run from the trials that finished."""
    import optuna.pruners as p

    least = max(1, settings.warmup_epochs)
    if settings.pruner == "median":
        return p.MedianPruner(n_startup_trials=settings.n_startup_trials, n_warmup_steps=settings.warmup_epochs)
    if settings.pruner == "successive_halving":
        return p.SuccessiveHalvingPruner(min_resource=least)
    if settings.pruner == "hyperband":
        return p.HyperbandPruner(min_resource=least)
    return p.NopPruner()


def open_study(settings: SearchSettings, sweep_dir: Path, sampler=None):
    """The search's study, created or (resume, a second launcher) loaded; maximises the objective."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name=settings.study_name, storage=settings.storage_url(sweep_dir),
                               sampler=sampler, pruner=build_pruner(settings), direction="maximize",
                               load_if_exists=True)


def fail_stale_trials(study) -> list[int]:
    """Mark every RUNNING trial failed (a killed search left it: the journal has no heartbeat) and enqueue its
    parameters again, once: a stale trial that was itself a retry is not retried again. The retried numbers."""
    from optuna.trial import TrialState

    retried = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        if RETRY_OF not in trial.user_attrs:
            study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number})
            retried.append(trial.number)
    return retried


def counted_trials(study) -> int:
    """Trials that count toward ``n_trials``: finished ones (completed, pruned, failed), but not those failed
    only because a killed search left them running (their retry counts instead), and the ones running now."""
    from optuna.trial import TrialState

    retried = {t.user_attrs[RETRY_OF] for t in study.get_trials(deepcopy=False) if RETRY_OF in t.user_attrs}
    return sum(t.state != TrialState.WAITING and t.number not in retried for t in study.get_trials(deepcopy=False))


def settings_from(sweeper_cfg: Any) -> SearchSettings:
    """The SearchSettings in a composed ``hydra.sweeper`` node (keys the settings do not have are ignored)."""
    from dataclasses import fields

    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(sweeper_cfg, resolve=True) if OmegaConf.is_config(sweeper_cfg) else sweeper_cfg
    return SearchSettings(**{f.name: plain[f.name] for f in fields(SearchSettings) if f.name in plain})


def write_search_file(sweep_dir: Path, settings: SearchSettings, fixed: list[str], specs: dict[str, str]) -> None:
    """``search.json``: the study's name and storage, the fixed overrides and the searched parameters as written
    (``tricklab report`` finds the study through it)."""
    import shlex

    from tricklab.invocation import command_line
    from tricklab.results import write_json_atomic

    write_json_atomic(Path(sweep_dir) / SEARCH_FILE, {
        "study_name": settings.study_name, "storage": settings.storage, "journal": JOURNAL_FILE,
        "seeds_per_trial": settings.seeds_per_trial, "sampler": settings.sampler, "pruner": settings.pruner,
        "fixed": fixed, "params": specs, "command": shlex.join(command_line()),
    })


def load_search(sweep_dir: Path) -> tuple[dict[str, Any], Any]:
    """A search folder's search.json and its study (loaded read-only in effect: nothing is asked or told, and a
    journal that is missing or cannot be read is not created or appended to); DataError when either cannot be
    read."""
    import optuna

    from tricklab.errors import DataError
    from tricklab.search.guard import journal_error, journal_problem, open_storage, read_search_file

    info = read_search_file(sweep_dir)
    if info is None:
        raise DataError(f"{Path(sweep_dir) / SEARCH_FILE} does not exist; a search folder holds the search.json "
                        f"its search wrote.")
    settings = SearchSettings(study_name=info["study_name"], storage=info["storage"])
    journal = Path(sweep_dir) / JOURNAL_FILE
    if not settings.storage and (why := journal_problem(journal)):
        raise DataError(journal_error(journal, why))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(settings, Path(sweep_dir))
    try:
        return info, optuna.load_study(study_name=settings.study_name, storage=storage)
    except KeyError:
        raise DataError(f"{settings.storage or journal} holds no study named {settings.study_name}, which "
                        f"{Path(sweep_dir) / SEARCH_FILE} names; give the folder of the search whose study it "
                        f"is.") from None
