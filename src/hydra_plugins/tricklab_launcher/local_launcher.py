"""``hydra/launcher=local``: a sweep's jobs in parallel worker processes, one per GPU or K on the CPU.

    python train.py -m hydra/launcher=local init=glorot,he seed=0,1,2              # one worker per GPU
    python train.py -m hydra/launcher=local hydra.launcher.workers=2 seed=0,1,2,3  # no GPU: 2 CPU workers

Jobs whose folder already holds a completed metrics.json are skipped (that is how ``resume=<sweep dir>``
works); a job that fails is recorded and the sweep goes on; the sweep ends with a summary and, when a job
failed, a non-zero exit. The machinery lives in ``tricklab.launch``; this module is what Hydra sees.
"""


import atexit
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.errors import CompactHydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from tricklab.errors import ConfigError, exit_on_user_error

log = logging.getLogger(__name__)


@dataclass
class LocalLauncherConf:
    _target_: str = "hydra_plugins.tricklab_launcher.local_launcher.WorkerPoolLauncher"
    # Parallel worker processes. null: one per GPU, or 1 without GPUs. With GPUs at most one per GPU.
    workers: Any = None
    # GPU ids shared out one per worker; auto: those in CUDA_VISIBLE_DEVICES, else every GPU; []: CPU only.
    gpus: Any = "auto"


ConfigStore.instance().store(group="hydra/launcher", name="local", node=LocalLauncherConf, provider="tricklab")


class JobFailed(CompactHydraException):
    """What Hydra's sweeper re-raises for a failed job, after the summary: exit 1 with one line, no traceback."""


class WorkerPoolLauncher(Launcher):
    def __init__(self, workers: int | None = None, gpus: str | Sequence[int | str] = "auto") -> None:
        self.workers = workers
        self.gpus = gpus
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None
        self.manifest = None
        self.pool = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Keep what Hydra hands over; the worker pool is started on the first ``launch``."""
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Run the jobs on the worker pool (skipping completed ones), keep sweep.json current; their JobReturns."""
        from tricklab.launch.manifest import SweepManifest, finished
        from tricklab.lease import live_holder

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        orders = [self._order(initial_job_idx + i, overrides) for i, overrides in enumerate(job_overrides)]
        _exit_if_folders_clash(orders)
        self.manifest = self.manifest or SweepManifest(sweep_dir, list(self.config.hydra.overrides.task))
        rerun = list(self.config.get("rerun") or [])
        returns = {o.num: self._skip(o) for o in orders if finished(o.job_dir, rerun)}
        returns.update({o.num: self._elsewhere(o, holder) for o in orders
                        if o.num not in returns and (holder := live_holder(o.job_dir))})
        to_run = [o for o in orders if o.num not in returns]
        for order in to_run:
            self.manifest.add(order.num, order.overrides, order.job_dir)
        self.manifest.write()
        pool = self._pool()
        log.info(f"Sweep {sweep_dir}: {len(to_run)} jobs to run on {min(len(pool.slots), len(to_run))} workers "
                 f"({len(returns)} completed earlier)")

        def done(order, outcome) -> None:
            returns[order.num] = self._record(order, outcome)

        try:
            pool.run(to_run, self._started, done)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (tricklab.signals): the pool has stopped its workers
            self._mark_interrupted([o for o in to_run if o.num not in returns])
            print(self.manifest.summary(), flush=True)
            raise
        print(self.manifest.summary(), flush=True)
        return [returns[order.num] for order in orders]

    def problems(self) -> list[str]:
        """What makes this launcher's settings unusable here (the grid sweeper asks before creating anything)."""
        from tricklab.launch.devices import plan_slots, usable_cores, visible_gpus

        try:
            plan_slots(self.workers, visible_gpus(self.gpus), usable_cores())
        except ConfigError as err:
            return [str(err)]
        return []

    def _pool(self):
        """The worker pool, started at the first batch and kept for the next ones; stopped when Python exits."""
        from tricklab.launch.devices import plan_slots, usable_cores, visible_gpus
        from tricklab.launch.pool import WorkerPool

        if self.pool is None:
            try:
                slots = plan_slots(self.workers, visible_gpus(self.gpus), usable_cores())
                self.pool = WorkerPool(slots, self._setup())
            except ConfigError as err:  # reported as tricklab reports bad values: one paragraph, exit 2
                exit_on_user_error(err)
            atexit.register(self.pool.close)
        return self.pool

    def _order(self, num: int, overrides: Sequence[str]):
        """The job's sweep config with its folder resolved here, once, in the launching process."""
        from tricklab.launch.messages import JobOrder

        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config):
            config.hydra.job.id = num
            config.hydra.job.num = num
            config.hydra.sweep.dir = str(config.hydra.sweep.dir)
            config.hydra.sweep.subdir = str(config.hydra.sweep.subdir)
        return JobOrder(num, list(overrides), config, Path(config.hydra.sweep.dir) / config.hydra.sweep.subdir)

    def _skip(self, order) -> JobReturn:
        """A job finished (completed or diverged) by an earlier launch of this sweep: not run again, its
        recorded result returned."""
        from tricklab.results import read_metrics
        from tricklab.train import objective

        record = read_metrics(order.job_dir)
        value = objective(record)
        self.manifest.add(order.num, order.overrides, order.job_dir, record["status"], skipped=True, value=value)
        return _job_return(order, JobStatus.COMPLETED, value)

    def _elsewhere(self, order, holder: dict) -> JobReturn:
        """A job another live process is running (its lease says so): not started here, and not waited for."""
        from tricklab.lease import describe

        log.info(f"\t#{order.num} is running elsewhere ({describe(holder)}); not started here")
        self.manifest.add(order.num, order.overrides, order.job_dir, "running", skipped=True,
                          elsewhere=describe(holder))
        return _job_return(order, JobStatus.COMPLETED, None)

    def _started(self, order, slot) -> None:
        log.info(f"\t#{order.num} {' '.join(filter_overrides(order.overrides))} on {slot.device}")
        self.manifest.update(order.num, status="running", device=slot.device, cores=list(slot.cores))

    def _mark_interrupted(self, orders) -> None:
        """The jobs that were running when the sweep was stopped: ``interrupted`` in the manifest (their
        metrics.json says so, or still ``running``: either way a resume continues them from last.ckpt)."""
        from tricklab.launch.manifest import job_status

        for order in orders:
            if self.manifest.status_of(order.num) == "running":
                status = job_status(order.job_dir)
                self.manifest.update(order.num, status=status if status not in (None, "running") else "interrupted")

    def _setup(self):
        from tricklab.launch.messages import Setup

        module, name = self.task_function.__module__, self.task_function.__name__
        if module == "__main__":
            raise ConfigError(
                f"hydra/launcher=local runs the task function in worker processes, which import it by name; "
                f"{name} is defined in the script itself (__main__). Define it in a module and import it there."
            )
        return Setup(module, name, self.config.hydra.job.name, self.hydra_context)

    def _record(self, order, outcome) -> JobReturn:
        """Put the outcome in the job's metrics.json (if the job could not) and in the manifest."""
        from tricklab.launch.manifest import job_status, mark_failed
        from tricklab.launch.messages import OUTPUT_LOG

        status = job_status(order.job_dir)
        if not outcome.ok and status in (None, "running"):
            mark_failed(order.job_dir, outcome.error)
            status = "failed"
        status = status or "completed"
        value = outcome.value if _plain(outcome.value) else None
        self.manifest.update(order.num, status=status, pid=outcome.pid, device=outcome.device, value=value,
                             error=outcome.error, wall_s=round(outcome.ended - outcome.started, 2))
        log.info(f"\t#{order.num} {status} ({outcome.ended - outcome.started:.1f} s)")
        if outcome.ok:
            return _job_return(order, JobStatus.COMPLETED, outcome.value)
        return _job_return(order, JobStatus.FAILED,
                           JobFailed(f"{outcome.error} (log: {order.job_dir / OUTPUT_LOG})"))


def _exit_if_folders_clash(orders) -> None:
    """Two jobs mapped to one folder would overwrite each other: refuse the sweep, one paragraph, exit 2."""
    from tricklab.launch.naming import folder_clash

    clash = folder_clash([(order.overrides, order.job_dir) for order in orders])
    if clash:
        exit_on_user_error(clash)


def _job_return(order, status: JobStatus, value: Any) -> JobReturn:
    task_cfg = OmegaConf.masked_copy(order.config, [key for key in order.config if key != "hydra"])
    ret = JobReturn(overrides=order.overrides, cfg=task_cfg, working_dir=str(order.job_dir),
                    task_name=order.config.hydra.job.name, status=status)
    ret.return_value = value
    return ret


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))
