"""``hydra/launcher=local`` (the default for ``-m``): a sweep's jobs in parallel worker processes.

    python train.py -m init=glorot,he seed=0,1,2               # one worker per GPU, else one per CPU core
    python train.py -m hydra.launcher.jobs_per_gpu=4 seed=0,1,2,3,4,5,6,7  # 4 per GPU
    python train.py -m hydra.launcher.workers=2 seed=0,1,2,3   # 2 workers

``jobs_per_gpu`` is for small nets, whose steps are launch-bound: one process leaves most of a GPU idle, and
several processes on it add up. The K jobs of a GPU share its memory with no limit between them. Without GPUs
``jobs_per_gpu`` must stay 1 (set ``workers`` instead): a value above 1 is refused, not ignored.

Jobs whose folder already holds a completed metrics.json are skipped (that is how ``resume=<sweep dir>``
works); a job that fails is recorded and the sweep goes on; the sweep ends with a summary and, when a job
failed, a non-zero exit. The machinery lives in ``tricklab.launch``; this module is what Hydra sees.
"""


import atexit
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from tricklab.errors import ConfigError, exit_on_user_error

log = logging.getLogger(__name__)


@dataclass
class LocalLauncherConf:
    _target_: str = "hydra_plugins.tricklab_launcher.local_launcher.WorkerPoolLauncher"
    # Parallel worker processes. null: jobs_per_gpu per GPU, or one per CPU core without GPUs. With GPUs at most
    # GPUs x jobs_per_gpu.
    workers: Any = None
    # GPU ids, each worker owns one; auto: those in CUDA_VISIBLE_DEVICES, else every GPU; []: CPU only.
    gpus: Any = "auto"
    # Jobs that differ only in seed and init train together, as one stacked model in one worker, in packs of at
    # most this many (tricklab.fuse); 1: every job alone. A job that cannot fuse runs alone, and the log says why.
    fuse: Any = 1
    # Workers (hence concurrent jobs) sharing each GPU: for small nets, whose steps are launch-bound. Must be
    # 1 without GPUs.
    jobs_per_gpu: Any = 1


ConfigStore.instance().store(group="hydra/launcher", name="local", node=LocalLauncherConf, provider="tricklab")


class WorkerPoolLauncher(Launcher):
    def __init__(self, workers: int | None = None, gpus: str | Sequence[int | str] = "auto",
                 jobs_per_gpu: int = 1, fuse: int = 1) -> None:
        self.workers = workers
        self.gpus = gpus
        self.jobs_per_gpu = jobs_per_gpu
        self.fuse = fuse
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None
        self.jobs = None
        self.pool = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Keep what Hydra hands over; the worker pool is started on the first ``launch``."""
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Run the jobs on the worker pool (skipping completed ones), keep sweep.json current; their JobReturns."""
        from tricklab.launch.jobs import SweepJobs
        from tricklab.launch.progress import shown

        self.jobs = self.jobs or SweepJobs(self.config, self.hydra_context)
        pool = self._pool()
        to_run = self.jobs.begin(job_overrides, initial_job_idx, workers=len(pool.slots))
        log.info(f"Sweep {self.config.hydra.sweep.dir}: {len(to_run)} jobs to run on "
                 f"{min(len(pool.slots), len(to_run))} workers ({len(job_overrides) - len(to_run)} completed earlier)")
        try:
            with shown(self.jobs.progress):
                pool.run(self._packed(to_run), self._started, self.jobs.finished)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (tricklab.signals): the pool has stopped its workers
            self.jobs.interrupted()
            raise
        return self.jobs.end()

    # --- asynchronous: a sweeper that asks for the next job whenever a worker is free (hparams_search=optuna) ---

    def free_workers(self) -> int:
        """How many jobs ``start_job`` can start now."""
        return self._pool().idle()

    def start_job(self, num: int, overrides: Sequence[str], config: DictConfig | None = None) -> Path:
        """Start job ``num`` on a free worker (``free_workers() > 0``) and enter it in sweep.json; its folder.
        ``config``: the job's sweep config of ``overrides`` when the caller composed it already (not composed
        again)."""
        from tricklab.launch.jobs import SweepJobs

        self.jobs = self.jobs or SweepJobs(self.config, self.hydra_context)
        order = self.jobs.enter(num, overrides, config)
        self._started(order, self._pool().start(order))
        return order.job_dir

    def wait_jobs(self) -> list[tuple[int, JobReturn]]:
        """Block until at least one started job ends; the number and JobReturn of each that ended (recorded in
        its metrics.json and sweep.json as ``launch`` records its jobs)."""
        return [(order.num, self.jobs.finished(order, outcome)) for order, outcome in self._pool().wait_any()]

    def warm_up(self, jobs: int) -> None:
        """Start the workers a sweep of ``jobs`` jobs will use now, so that they import torch and Lightning while
        the sweeper checks the jobs and ``launch`` composes them (an idle worker is killed at exit, so a sweep the
        checks refuse still stops at once). Nothing for settings that cannot work: ``problems`` says why."""
        with contextlib.suppress(ConfigError):
            self._start_pool()
            self.pool.warm(-(-jobs // self.fuse))  # a pack of fused jobs needs one worker

    def problems(self) -> list[str]:
        """What makes this launcher's settings unusable here (the grid sweeper asks before creating anything)."""
        try:
            self._slots()
        except ConfigError as err:
            return [str(err)]
        return []

    def _packed(self, orders: list) -> list:
        """The orders with the jobs that can train together grouped into packs (``hydra.launcher.fuse``)."""
        if self.fuse == 1:
            return orders
        from tricklab.fuse.plan import plan_packs
        from tricklab.launch.messages import PackOrder

        groups, alone = plan_packs([order.config for order in orders], self.fuse)
        for i, why in alone.items():
            log.info(f"\t#{orders[i].num} trains alone, not fused: {why}")
        items = []
        for group in groups:
            if len(group) == 1:
                items.append(orders[group[0]])
            else:
                items.append(PackOrder([orders[i] for i in group]))
                log.info(f"\t#{', #'.join(str(orders[i].num) for i in group)} train together, fused in one pack")
        return items

    def _pool(self):
        """The worker pool, started at the first batch (or by ``warm_up``) and kept for the next ones."""
        try:
            self._start_pool()
        except ConfigError as err:  # reported as tricklab reports bad values: one paragraph, exit 2
            exit_on_user_error(err)
        return self.pool

    def _start_pool(self) -> None:
        """Create the pool unless it exists (stopped when Python exits); ConfigError for settings that cannot
        work."""
        from tricklab.launch.pool import WorkerPool

        if self.pool is None:
            self.pool = WorkerPool(self._slots(), self._setup())
            atexit.register(self.pool.close)

    def _slots(self):
        """The workers' slots for these settings on this machine; a ConfigError for settings that cannot work."""
        from tricklab.fuse.plan import check_fuse
        from tricklab.launch.devices import plan_slots, usable_cores, visible_gpus

        check_fuse(self.fuse)
        return plan_slots(self.workers, visible_gpus(self.gpus), usable_cores(), self.jobs_per_gpu)

    def _started(self, order, slot) -> None:
        self.jobs.started(order, slot.device, cores=list(slot.cores))

    def _setup(self):
        from tricklab.launch.jobs import worker_setup

        return worker_setup("local", self.task_function, self.config, self.hydra_context)
