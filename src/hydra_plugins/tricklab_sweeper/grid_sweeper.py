"""``hydra/sweeper=grid`` (tricklab's default for ``-m``): Hydra's grid, checked whole before anything exists.

    python train.py -m seed=0,1 optimizer.lr=0.01,0.1          # 4 jobs, as Hydra's basic sweeper gives them

It expands the command line as Hydra's BasicSweeper does (same jobs, same order, same folders), then composes
and checks *every* job's config with tricklab's checks; any problem in any job is reported, all of them at
once, and the sweep exits 2 before its folder is created. ``hydra.sweeper.arms`` adds named, zipped arms
(see tricklab.grid). The expansion lives in ``tricklab.grid``; this module is what Hydra sees.
"""


import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from tricklab.errors import ConfigError, exit_on_user_error

log = logging.getLogger(__name__)


@dataclass
class GridSweeperConf:
    _target_: str = "hydra_plugins.tricklab_sweeper.grid_sweeper.GridSweeper"
    # Jobs handed to the launcher at a time; null: all at once.
    max_batch_size: Any = None
    # key -> comma-separated values, swept as if given on the command line (before it).
    params: Any = None
    # arm name -> list of overrides: zipped (non-Cartesian) settings, each crossed with the other swept keys.
    arms: Any = None
    # arm names: run only these arms (a study's later rounds add seeds to the arms of undecided claims); null: all.
    only: Any = None


ConfigStore.instance().store(group="hydra/sweeper", name="grid", node=GridSweeperConf, provider="tricklab")


class GridSweeper(Sweeper):
    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None,
                 arms: dict[str, list[str]] | None = None, only: list[str] | None = None) -> None:
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})
        self.arms = {str(name): list(lines) for name, lines in (arms or {}).items()}
        self.only = None if only is None else [str(name) for name in only]
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Keep Hydra's context and instantiate the configured launcher."""
        from hydra.core.plugins import Plugins

        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> list[list[JobReturn]]:
        """Expand, check every job (exit 2 listing all problems), then create the sweep folder and launch."""
        from tricklab.analysis.study import study_problems
        from tricklab.checks import sweep_problems
        from tricklab.launch.faults import disk_faults_told

        try:
            jobs = self.jobs(arguments)
            if hasattr(self.launcher, "warm_up"):  # a launcher with workers starts them now, to import while we check
                self.launcher.warm_up(len(jobs))
            found = sweep_problems(self.hydra_context.config_loader, self.config, [j.overrides for j in jobs])
            found += getattr(self.launcher, "problems", list)()  # a launcher that can check itself does
            found += study_problems(self.config, self.arms)  # a study's claims name arms and metrics that exist
            found += self.folder_problems()
        except ConfigError as err:
            exit_on_user_error(err)
        if found:
            exit_on_user_error("\n".join(found))
        sweep_dir = Path(str(self.config.hydra.sweep.dir))  # resolving it creates it: only now
        with disk_faults_told(sweep_dir):
            return self.run(sweep_dir, jobs)

    def run(self, sweep_dir: Path, jobs) -> list[list[JobReturn]]:
        """Create the sweep folder and its record, launch the jobs (everything checked)."""
        from tricklab.grid import batches

        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        self.keep_group(sweep_dir, [list(j.overrides) for j in jobs])
        arms = f" in {len(self._selected_arms())} arms" if self.arms else ""
        log.info(f"Sweep {sweep_dir}: {len(jobs)} jobs{arms}")
        returns, first = [], 0
        for batch in batches(jobs, self.max_batch_size):
            results = self.launcher.launch([list(j.overrides) for j in batch], initial_job_idx=first)
            for result in results:
                _ = result.return_value  # re-raises a failed job's error, as Hydra's sweepers do
            first += len(batch)
            returns.append(results)
        return returns

    def folder_problems(self) -> list[str]:
        """The folder this sweep continues (``resume=``, ``hydra.sweep.dir`` naming one) must be a grid sweep's, not
        a search's (whose record multirun.yaml and the jobs would mix with the trials), and one a file can be
        created in (else multirun.yaml would be rewritten before the first job failed to write)."""
        from tricklab.search.guard import existing_folder, grid_into_search_problem, unwritable_folder_problem

        sweep_dir = existing_folder(self.config)
        if sweep_dir is None:
            return []
        why = grid_into_search_problem(sweep_dir) or unwritable_folder_problem(sweep_dir)
        return [why] if why else []

    def keep_group(self, sweep_dir: Path, job_overrides: list[list[str]]) -> str:
        """The W&B group of the sweep's jobs, ``<experiment or swept keys>-<6 hex>``, kept in the sweep folder
        (the jobs read it there; a resume keeps the first launch's)."""
        from tricklab.launch.naming import keep_group, sweep_label, varying_keys

        experiment = self.config.hydra.runtime.choices.get("experiment")
        return keep_group(sweep_dir, sweep_label(experiment, varying_keys(job_overrides)))

    def jobs(self, arguments: list[str]):
        """The sweep's jobs: ``params`` then the command line, expanded with the arms."""
        from tricklab.grid import arm_overrides, expand

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([f"{k}={v}" for k, v in self.params.items()] + list(arguments))
        return expand(overrides, arm_overrides(self._selected_arms(), parser.parse_overrides) if self.arms else None)

    def _selected_arms(self) -> dict[str, list[str]]:
        """The arms ``only`` names (all of them when it is null); a ConfigError for a name that is no arm."""
        if self.only is None:
            return self.arms
        unknown = [name for name in self.only if name not in self.arms]
        if unknown or not self.only:
            raise ConfigError(f"hydra.sweeper.only={self.only!r} is not allowed: it must list arms of "
                              f"hydra.sweeper.arms ({', '.join(self.arms)}); {', '.join(unknown) or 'none'} "
                              f"{'is' if len(unknown) == 1 else 'are'} not.")
        return {name: self.arms[name] for name in self.only}
