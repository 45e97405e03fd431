"""``hydra/launcher=local``: a sweep's jobs in parallel worker processes, one per GPU or K on the CPU.

    python train.py -m hydra/launcher=local init=glorot,he seed=0,1,2              # one worker per GPU
    python train.py -m hydra/launcher=local hydra.launcher.workers=2 seed=0,1,2,3  # no GPU: 2 CPU workers

Jobs whose folder already holds a completed metrics.json are skipped (that is how ``resume=<sweep dir>``
works); a job that fails is recorded and the sweep goes on; the sweep ends with a summary and, when a job
failed, a non-zero exit. The machinery lives in ``tricklab.sweeps``; this module is what Hydra sees.
"""


import atexit
import logging
import sys
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
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from tricklab.errors import ConfigError
        from tricklab.results import read_metrics
        from tricklab.sweeps.devices import plan_slots, usable_cores, visible_gpus
        from tricklab.sweeps.manifest import SweepManifest, job_status
        from tricklab.sweeps.pool import WorkerPool
        from tricklab.train import objective

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if self.manifest is None:
            self.manifest = SweepManifest(sweep_dir, list(self.config.hydra.overrides.task))
        orders, returns, overrides_of = [], {}, {}
        for idx, overrides in enumerate(job_overrides):
            order = self._order(initial_job_idx + idx, overrides)
            overrides_of[order.num] = list(overrides)
            if job_status(order.job_dir) == "completed":
                value = objective(read_metrics(order.job_dir))
                self.manifest.add(order.num, list(overrides), order.job_dir, "completed", skipped=True, value=value)
                returns[order.num] = _job_return(order, overrides, JobStatus.COMPLETED, value)
            else:
                self.manifest.add(order.num, list(overrides), order.job_dir)
                orders.append(order)
        self.manifest.write()
        if self.pool is None:
            try:
                self.pool = WorkerPool(plan_slots(self.workers, visible_gpus(self.gpus), usable_cores()),
                                       self._setup())
            except ConfigError as err:  # reported as tricklab reports bad values: one paragraph, exit 2
                print(f"tricklab: error: {err}", file=sys.stderr)
                sys.exit(2)
            atexit.register(self.pool.close)
        log.info(f"Sweep {sweep_dir}: {len(orders)} jobs to run on {min(len(self.pool.slots), len(orders))} "
                 f"workers ({len(returns)} completed earlier)")

        def started(order, slot) -> None:
            log.info(f"\t#{order.num} {' '.join(filter_overrides(overrides_of[order.num]))} on {slot.device}")
            self.manifest.update(order.num, status="running", device=slot.device, cores=list(slot.cores))

        def done(order, outcome) -> None:
            returns[order.num] = self._record(order, overrides_of[order.num], outcome)

        self.pool.run(orders, started, done)
        print(self.manifest.summary(), flush=True)
        return [returns[initial_job_idx + i] for i in range(len(job_overrides))]

    def _order(self, num: int, overrides: Sequence[str]):
        """The job's sweep config with its folder resolved here, once, in the launching process."""
        from tricklab.sweeps.messages import JobOrder

        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config):
            config.hydra.job.id = num
            config.hydra.job.num = num
            config.hydra.sweep.dir = str(config.hydra.sweep.dir)
            config.hydra.sweep.subdir = str(config.hydra.sweep.subdir)
        return JobOrder(num, config, Path(config.hydra.sweep.dir) / config.hydra.sweep.subdir)

    def _setup(self):
        from tricklab.errors import ConfigError
        from tricklab.sweeps.messages import Setup

        module, name = self.task_function.__module__, self.task_function.__name__
        if module == "__main__":
            raise ConfigError(
                f"hydra/launcher=local runs the task function in worker processes, which import it by name; "
                f"{name} is defined in the script itself (__main__). Define it in a module and import it there."
            )
        return Setup(module, name, self.config.hydra.job.name, self.hydra_context)

    def _record(self, order, overrides: list[str], outcome) -> JobReturn:
        """Put the outcome in the job's metrics.json (if the job could not) and in the manifest."""
        from tricklab.sweeps.manifest import job_status, mark_failed
        from tricklab.sweeps.messages import OUTPUT_LOG

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
            return _job_return(order, overrides, JobStatus.COMPLETED, outcome.value)
        return _job_return(order, overrides, JobStatus.FAILED,
                           JobFailed(f"{outcome.error} (log: {order.job_dir / OUTPUT_LOG})"))


def _job_return(order, overrides: Sequence[str], status: JobStatus, value: Any) -> JobReturn:
    ret = JobReturn(overrides=list(overrides), cfg=OmegaConf.masked_copy(order.config, [k for k in order.config
                    if k != "hydra"]), working_dir=str(order.job_dir), task_name=order.config.hydra.job.name,
                    status=status)
    ret.return_value = value
    return ret


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))
