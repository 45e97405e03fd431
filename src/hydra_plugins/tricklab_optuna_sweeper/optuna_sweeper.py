"""``hydra/sweeper=optuna`` (``hparams_search=optuna``): a search on Optuna that asks for a new trial whenever a
worker is free, prunes bad trials by their per-epoch validation accuracy, and keeps its study in a journal in
the sweep folder, so that ``resume=<sweep dir>`` continues it. The machinery lives in ``tricklab.search``; this
module is what Hydra sees.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.errors import CompactHydraException, HydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from tricklab.errors import ConfigError, TricklabError, exit_on_user_error
from tricklab.search.study import SearchSettings

log = logging.getLogger(__name__)


@dataclass
class OptunaSweeperConf(SearchSettings):
    _target_: str = "hydra_plugins.tricklab_optuna_sweeper.optuna_sweeper.OptunaSweeper"


ConfigStore.instance().store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="tricklab")


class SearchFailed(CompactHydraException):
    """Some trials failed: exit 1 with the summary's last line, no traceback (as a grid sweep with failed jobs)."""


class OptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        plain = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
                 for k, v in settings.items()}
        self.settings = SearchSettings(**plain)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Keep Hydra's context and set up the launcher the trials run on."""
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> dict[str, int]:
        """Run the search; the counts of trials this launch told completed, pruned and failed."""
        from tricklab.launch.faults import disk_faults_told

        settings = self.settings
        space, grid = self.checked(arguments)
        if hasattr(self.launcher, "warm_up"):  # a launcher with workers starts them now, to import while optuna loads
            self.launcher.warm_up(settings.n_trials * settings.seeds_per_trial)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        with disk_faults_told(sweep_dir, "search"):
            return self.search(sweep_dir, space, grid)

    def search(self, sweep_dir: Path, space, grid) -> dict[str, int]:
        """Open the study in ``sweep_dir`` and run the trials (everything checked)."""
        from tricklab.search.guard import remember_search
        from tricklab.search.runner import BatchJobs, Search
        from tricklab.search.study import build_sampler, fail_stale_trials, open_study, write_search_file

        settings = self.settings
        sweep_dir.mkdir(parents=True, exist_ok=True)
        study = open_study(settings, sweep_dir, build_sampler(settings, grid))
        remember_search(study, settings, space)
        retried = fail_stale_trials(study) if settings.retry_running else []
        if retried:
            log.info(f"trials {', '.join(map(str, retried))} were left running by a killed search: marked failed, "
                     f"their parameters enqueued again")
        for params in settings.enqueue:
            study.enqueue_trial(params, skip_if_exists=True)
        write_search_file(sweep_dir, settings, space.fixed, space.specs)
        self.keep_group(sweep_dir, list(space.distributions))
        n_trials = settings.n_trials if grid is None else min(settings.n_trials, _grid_size(grid))
        jobs = self.launcher if hasattr(self.launcher, "start_job") else BatchJobs(self.launcher, settings.n_jobs)
        told = Search(settings, space, study, jobs, sweep_dir, self.check, self.config.seed, n_trials).run()
        line = _summary(study, sweep_dir)
        print(line, flush=True)
        if told["failed"]:
            raise SearchFailed(line)
        return told

    def checked(self, arguments: list[str]):
        """The search space and the grid (None unless sampler=grid), once everything the search would use is
        checked: its settings, space and enqueued configs, the launcher's settings, the folder it continues and the
        study it would continue. Any problem: one paragraph each, exit 2, nothing created or touched."""
        from tricklab.checks import group_options
        from tricklab.search.guard import enqueue_problems
        from tricklab.search.space import parse_space

        settings = self.settings
        try:
            settings.check()
            options = group_options(self.hydra_context.config_loader, self.config)
            space = parse_space(settings.params, arguments, options)
            grid = space.grid() if settings.sampler == "grid" else None
            space.check_ends(self.check)
            found = enqueue_problems(settings.enqueue, space, self.check)
            found += getattr(self.launcher, "problems", list)()  # a launcher that can check itself does
            if not found:
                found = self.study_problems(space)
        except TricklabError as err:
            exit_on_user_error(err)
        if found:
            exit_on_user_error("\n".join(found))
        return space, grid

    def study_problems(self, space) -> list[str]:
        """The folder this search continues (``resume=``, ``hydra.sweep.dir``) must be a search's, with a readable
        search.json and journal naming this study; the study in its storage must be this search's (direction,
        space, fixed overrides). A new folder is not created here: a new search has nothing there to check."""
        from tricklab.search.guard import (
            existing_folder,
            journal_error,
            journal_problem,
            open_storage,
            read_search_file,
            record_problems,
            search_into_grid_problem,
            unwritable_folder_problem,
        )
        from tricklab.search.guard import study_problems as mismatches
        from tricklab.search.study import JOURNAL_FILE

        settings = self.settings
        sweep_dir = existing_folder(self.config)
        info = None
        if sweep_dir is not None:
            if why := search_into_grid_problem(sweep_dir) or unwritable_folder_problem(sweep_dir):
                return [why]
            if self.config.get("overwrite"):
                return [f"overwrite=true cannot retrain the search in {sweep_dir}: its trials' results are in its "
                        f"study, which the sampler learns from, so training them again in their folders would leave "
                        f"the study holding values no folder has. Nothing was changed. Start a new search (without "
                        f"resume= or hydra.sweep.dir), or continue this one without overwrite=true."]
            info = read_search_file(sweep_dir)
            if info is not None and (found := record_problems(info, settings, sweep_dir)):
                return found
            journal = sweep_dir / JOURNAL_FILE
            if (not settings.storage and (journal.exists() or info is not None)
                    and (why := journal_problem(journal))):
                return [journal_error(journal, why)]
        if settings.storage:
            where = f"hydra.sweeper.storage={settings.storage}"
        elif sweep_dir is not None and (sweep_dir / JOURNAL_FILE).exists():
            where = str(sweep_dir / JOURNAL_FILE)
        else:
            return []  # a journal the search will create: no study in it yet
        return mismatches(open_storage(settings, sweep_dir), settings, space, info, where)

    def keep_group(self, sweep_dir: Path, searched: list[str]) -> str:
        """The W&B group of the trials' runs, ``<experiment or searched keys>-<6 hex>``, kept in the sweep folder
        (the trials and ``tricklab report --wandb`` read it there; a resumed search keeps the first one)."""
        from tricklab.launch.naming import keep_group, sweep_label

        return keep_group(sweep_dir, sweep_label(self.config.hydra.runtime.choices.get("experiment"), searched))

    def check(self, overrides: list[str]) -> DictConfig:
        """The job config of ``overrides``, composed and checked (a trial's first job is then started with it, not
        composed again); ConfigError when it does not compose or fails tricklab's checks."""
        from tricklab.config import validate
        from tricklab.search.runner import task_overrides

        try:
            config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        except HydraException as err:
            lines = str(err).split("Config search path")[0].splitlines()  # Hydra's search path: not about the value
            why = " ".join(line.strip() for line in lines if line.strip())
            raise ConfigError(f"the overrides {' '.join(task_overrides(overrides))} do not compose: {why}") from None
        validate(config)
        return config


def _grid_size(grid: dict[str, list[Any]]) -> int:
    size = 1
    for values in grid.values():
        size *= len(values)
    return size


def _summary(study: Any, sweep_dir: Path) -> str:
    """One line: the study's trials by state, and the best one; then a line for each failed trial that says why."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials)
              for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    best = ""
    if counts["complete"]:
        best = f"; best trial {study.best_trial.number}: {study.best_value:.4f}"
    line = (f"Search {sweep_dir}: {len(trials)} trials, {counts['complete']} completed, {counts['pruned']} pruned, "
            f"{counts['fail']} failed{best}. Report: tricklab report {sweep_dir}")
    why = [f"  trial {t.number} failed: {t.user_attrs['error']}" for t in trials
           if t.state == TrialState.FAIL and t.user_attrs.get("error")]
    return "\n".join([line, *why])
