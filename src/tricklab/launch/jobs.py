"""What every tricklab launcher does around running a sweep's jobs, however it runs them.

``hydra/launcher=local`` (a worker pool) and ``hydra/launcher=ray`` (Ray tasks) both go through ``SweepJobs``:
each job's order (its config, its folder resolved once, in the launching process), jobs that would share a folder
refused, finished jobs (completed or diverged) skipped (that is how ``resume=<sweep dir>`` works), ``sweep.json``
kept current as jobs start and end, the outcome of a job that could not record itself put in its metrics.json,
Hydra's JobReturns and the closing summary. So folders, resume, W&B groups and the summary are the same whichever
launcher runs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.errors import CompactHydraException
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from tricklab.errors import ConfigError, exit_on_user_error
from tricklab.launch.faults import resume_command
from tricklab.launch.manifest import SweepManifest, mark_failed
from tricklab.launch.messages import OUTPUT_LOG, JobOrder, JobOutcome, Setup
from tricklab.launch.progress import SweepProgress
from tricklab.lease import live_holder
from tricklab.run.status import finished, job_status, runs_again

log = logging.getLogger(__name__)

# How the results table ranks the configs: the jobs' return value (tricklab.run.job.objective), as sweep.json has it.
OBJECTIVE = "best/val/acc"


class JobFailed(CompactHydraException):
    """What Hydra's sweeper re-raises for a failed job, after the summary: exit 1 with one line, no traceback."""


class SweepJobs:
    """The bookkeeping of one sweep's launches (a sweeper such as Optuna launches batch after batch)."""

    def __init__(self, config: DictConfig, hydra_context: HydraContext) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.manifest: SweepManifest | None = None
        self.orders: list[JobOrder] = []
        self.returns: dict[int, JobReturn] = {}
        self.progress = SweepProgress(0, 0, 1)

    def begin(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int, workers: int = 1) -> list[JobOrder]:
        """Set up Hydra's logging and the sweep folder, refuse jobs that would share a folder, skip the finished
        ones and list the others in sweep.json: the orders left to run (on ``workers`` at a time, for the ETA)."""
        self._open()
        self.orders = [self._order(initial_job_idx + i, overrides) for i, overrides in enumerate(job_overrides)]
        _exit_if_folders_clash(self.orders)
        rerun = runs_again(self.config)
        if self.config.get("overwrite") and (done := [o for o in self.orders if finished(o.job_dir)]):
            log.warning(f"overwrite=true: {len(done)} finished job(s) of {self.config.hydra.sweep.dir} train again "
                        f"from the start, replacing their results (as a single run's overwrite=true does)")
        self.returns = {o.num: self._skip(o) for o in self.orders if finished(o.job_dir, rerun)}
        self.returns.update({o.num: self._elsewhere(o, holder) for o in self.orders
                             if o.num not in self.returns and (holder := live_holder(o.job_dir))})
        to_run = [o for o in self.orders if o.num not in self.returns]
        self.progress = SweepProgress(len(self.orders), len(self.returns), min(workers, len(to_run)))
        for order in to_run:
            self.manifest.add(order.num, order.overrides, order.job_dir)
        self.manifest.write()
        return to_run

    def enter(self, num: int, overrides: Sequence[str], config: DictConfig | None = None) -> JobOrder:
        """One job of an asynchronous sweep (a sweeper asking for jobs one at a time): its order, in sweep.json.
        ``config``: its sweep config when the sweeper composed it already (to check it), so it is not composed
        twice."""
        self._open()
        order = self._order(num, overrides, config)
        self.manifest.add(order.num, order.overrides, order.job_dir)
        self.progress.total += 1
        return order

    def _open(self) -> None:
        """Hydra's globals and logging, the sweep folder and (once) its manifest."""
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        self.manifest = self.manifest or SweepManifest(sweep_dir, list(self.config.hydra.overrides.task))

    def started(self, order: JobOrder, device: str, **fields: Any) -> None:
        """Job ``order`` runs now on ``device``: log it, mark it running in sweep.json (with ``fields``)."""
        log.info(f"\t#{order.num} {' '.join(filter_overrides(order.overrides))} on {device}")
        self.manifest.update(order.num, status="running", device=device, **fields)
        self.progress.started(order.num)

    def finished(self, order: JobOrder, outcome: JobOutcome, **fields: Any) -> JobReturn:
        """Put the outcome in the job's metrics.json (if the job could not) and in sweep.json (with ``fields``);
        the job's JobReturn."""
        status = job_status(order.job_dir)
        if not outcome.ok and status in (None, "running"):
            order.job_dir.mkdir(parents=True, exist_ok=True)  # a job can fail before it starts (Ray: its node died)
            mark_failed(order.job_dir, outcome.error)
            status = "failed"
        status = status or "completed"
        value = outcome.value if _plain(outcome.value) else None
        self.manifest.update(order.num, status=status, pid=outcome.pid, device=outcome.device, value=value,
                             error=outcome.error, wall_s=round(outcome.ended - outcome.started, 2), **fields)
        log.info(f"\t{self.progress.finished(order.num, order.job_dir.name, status, value)}")
        if outcome.ok:
            self.returns[order.num] = _job_return(order, JobStatus.COMPLETED, outcome.value)
        else:
            self.returns[order.num] = _job_return(order, JobStatus.FAILED,
                                                  JobFailed(f"{outcome.error} (log: {order.job_dir / OUTPUT_LOG})"))
        return self.returns[order.num]

    def interrupted(self) -> None:
        """The sweep was stopped (Ctrl-C, SIGTERM): the jobs still running become ``interrupted`` in sweep.json
        (their metrics.json says so, or still ``running``: either way a resume continues them from last.ckpt),
        and the summary is printed."""
        for order in self.orders:
            if order.num not in self.returns and self.manifest.status_of(order.num) == "running":
                status = job_status(order.job_dir)
                self.manifest.update(order.num, status=status if status not in (None, "running") else "interrupted")
        print(self.manifest.summary(), flush=True)
        print(f"Resume it with: {resume_command(self.manifest.path.parent)}", flush=True)

    def end(self) -> list[JobReturn]:
        """Print the summary and the results table; the JobReturns of the last ``begin``'s jobs, in their order."""
        print(self.manifest.summary(), flush=True)
        print_results(self.manifest.path.parent)
        return [self.returns[order.num] for order in self.orders]

    def _order(self, num: int, overrides: Sequence[str], config: DictConfig | None = None) -> JobOrder:
        """The job's sweep config (composed here unless given) with its folder resolved here, once, in the
        launching process."""
        if config is None:
            config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config):
            config.hydra.job.id = num
            config.hydra.job.num = num
            config.hydra.sweep.dir = str(config.hydra.sweep.dir)
            config.hydra.sweep.subdir = str(config.hydra.sweep.subdir)
        return JobOrder(num, list(overrides), config, Path(config.hydra.sweep.dir) / config.hydra.sweep.subdir)

    def _skip(self, order: JobOrder) -> JobReturn:
        """A job finished (completed or diverged) by an earlier launch of this sweep: not run again, its
        recorded result returned."""
        from tricklab.results import read_metrics
        from tricklab.run.job import objective

        record = read_metrics(order.job_dir)
        value = objective(record)
        self.manifest.add(order.num, order.overrides, order.job_dir, record["status"], skipped=True, value=value)
        return _job_return(order, JobStatus.COMPLETED, value)

    def _elsewhere(self, order: JobOrder, holder: dict) -> JobReturn:
        """A job another live process is running (its lease says so): not started here, and not waited for."""
        from tricklab.lease import describe

        log.info(f"\t#{order.num} is running elsewhere ({describe(holder)}); not started here")
        self.manifest.add(order.num, order.overrides, order.job_dir, "running", skipped=True,
                          elsewhere=describe(holder))
        return _job_return(order, JobStatus.COMPLETED, None)


def print_results(sweep_dir: Path) -> None:
    """The sweep's configs (mean ± std over seeds), best first by the value the jobs return (their best
    val/acc): ``tricklab report``'s table, without its files and plots. Nothing when no job left a record."""
    from tricklab.analysis.report import print_table, summarise
    from tricklab.errors import DataError
    from tricklab.sweep import load_sweep

    try:
        sweep = load_sweep(sweep_dir)
    except DataError:  # every job failed before it could write its metrics.json: the summary says so
        return
    report = summarise(sweep, rank_by=OBJECTIVE, metrics=(OBJECTIVE, "test/acc", "test/loss", "val/loss"))
    print_table(report, f"sweep results, best first by {OBJECTIVE} · {sweep_dir}")


def worker_setup(launcher: str, task_function: TaskFunction, config: DictConfig,
                 hydra_context: HydraContext) -> Setup:
    """What a job's process needs to run it: the task function by reference (module and name) and Hydra's context.
    ConfigError for a task function defined in the script itself, which another process cannot import."""
    module, name = task_function.__module__, task_function.__name__
    if module == "__main__":
        raise ConfigError(
            f"hydra/launcher={launcher} runs the task function in other processes, which import it by name; "
            f"{name} is defined in the script itself (__main__). Define it in a module and import it there."
        )
    return Setup(module, name, config.hydra.job.name, hydra_context)


def _exit_if_folders_clash(orders: Sequence[JobOrder]) -> None:
    """Two jobs mapped to one folder would overwrite each other: refuse the sweep, one paragraph, exit 2."""
    from tricklab.launch.naming import folder_clash

    clash = folder_clash([(order.overrides, order.job_dir) for order in orders])
    if clash:
        exit_on_user_error(clash)


def _job_return(order: JobOrder, status: JobStatus, value: Any) -> JobReturn:
    task_cfg = OmegaConf.masked_copy(order.config, [key for key in order.config if key != "hydra"])
    ret = JobReturn(overrides=order.overrides, cfg=task_cfg, working_dir=str(order.job_dir),
                    task_name=order.config.hydra.job.name, status=status)
    ret.return_value = value
    return ret


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))
