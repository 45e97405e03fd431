"""``hydra/launcher=ray``: every job of a sweep a Ray task, on a new local Ray instance or on a cluster.

    python train.py -m hydra/launcher=ray init=glorot,he seed=0,1,2                   # a local Ray instance
    python train.py -m hydra/launcher=ray hydra.launcher.address=auto seed=0,1,2      # the cluster `ray start` runs
    python train.py -m hydra/launcher=ray hydra.launcher.num_gpus=0.25 seed=0,1,2,3   # four jobs share a GPU

Folders, resume=, sweep.json, W&B groups and the closing summary are those of every tricklab launcher
(``tricklab.launch.jobs``); the Ray side is in ``tricklab.launch.ray_tasks``; this module is what Hydra sees.
It imports Ray only when a sweep runs: Hydra imports every plugin on each start, ``--help`` included.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from tricklab.errors import ConfigError, exit_on_user_error

log = logging.getLogger(__name__)


@dataclass
class RayLauncherConf:
    _target_: str = "hydra_plugins.tricklab_ray_launcher.ray_launcher.RayLauncher"
    # null: start a new local Ray instance; auto: join the cluster `ray start` runs on this machine;
    # <head ip>:6379: a cluster's head; ray://<head ip>:10001: a cluster through Ray Client.
    address: Any = None
    # CPUs each job asks of Ray; its OpenMP/MKL threads are as many (at least one).
    num_cpus: Any = 1
    # GPUs each job asks of Ray; null: 1 where the cluster has GPUs, else 0; a fraction shares a GPU (0.25: four jobs).
    num_gpus: Any = None
    # How often a job whose process died (killed, segfault, node lost) is run again; each retry is in sweep.json.
    max_retries: Any = 0
    # ray.init's arguments for a new local instance (null: Ray's default); leave them null when joining a cluster.
    init: Any = field(default_factory=lambda: {"num_cpus": None, "num_gpus": None, "include_dashboard": None})


ConfigStore.instance().store(group="hydra/launcher", name="ray", node=RayLauncherConf, provider="tricklab")


class RayLauncher(Launcher):
    def __init__(self, address: Any = None, num_cpus: Any = 1, num_gpus: Any = None, max_retries: Any = 0,
                 init: Any = None) -> None:
        self.settings = dict(address=address, num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries,
                             init=OmegaConf.to_container(init) if isinstance(init, DictConfig) else init)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None
        self.jobs = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Keep what Hydra hands over; Ray is started (or joined) on the first ``launch`` with jobs to run."""
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Run the jobs as Ray tasks (skipping completed ones), keep sweep.json current; their JobReturns."""
        from tricklab.launch.jobs import SweepJobs, worker_setup
        from tricklab.launch.ray_tasks import RaySettings, connect, run_tasks

        try:  # bad settings are reported as tricklab reports bad values: one paragraph, exit 2
            settings = RaySettings.checked(**self.settings)
            setup = worker_setup("ray", self.task_function, self.config, self.hydra_context)
            self.jobs = self.jobs or SweepJobs(self.config, self.hydra_context)
            to_run = self.jobs.begin(job_overrides, initial_job_idx)
            if to_run:  # a resumed sweep whose jobs all completed does not start Ray
                resources = connect(settings)
                log.info(f"Sweep {self.config.hydra.sweep.dir}: {len(to_run)} jobs to run as Ray tasks "
                         f"({resources.num_cpus} CPU, {resources.num_gpus} GPU each; "
                         f"{len(job_overrides) - len(to_run)} completed earlier)")
                run_tasks(to_run, setup, resources, self.jobs.started, self.jobs.finished)
        except ConfigError as err:
            exit_on_user_error(err)
        return self.jobs.end()
