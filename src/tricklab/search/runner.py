"""The search loop: whenever a worker is free, start the next job (a seed of a trial already asked for, else a
new trial asked of the study), and tell the study each trial's result as soon as its last seed ends.

A trial is one sampled config; with ``seeds_per_trial=K`` it is K jobs, numbered ``trial*K + i`` in sweep.json,
in folders ``trial_<n>`` (K = 1) or ``trial_<n>/seed_<i>``; its value is the mean of its seeds' values (the
std and the values are kept as user attributes). A trial whose config fails tricklab's checks is told failed
without running.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tricklab.errors import ConfigError
from tricklab.results import read_metrics
from tricklab.search.space import SearchSpace
from tricklab.search.study import SearchSettings, counted_trials
from tricklab.search.trial import SEED_ENV, TRIAL_ENV

log = logging.getLogger(__name__)


class Jobs(Protocol):
    """Where the search runs its jobs: the local launcher's asynchronous interface, or ``BatchJobs``."""

    def free_workers(self) -> int: ...

    def start_job(self, num: int, overrides: list[str], config: Any = None) -> Any: ...

    def wait_jobs(self) -> list[tuple[int, Any]]: ...


class BatchJobs:
    """Any other Hydra launcher (basic, SLURM, Ray): up to ``size`` started jobs go to its ``launch`` together,
    as one batch, when the search waits: a slow job holds up its batch."""

    def __init__(self, launcher: Any, size: int) -> None:
        self.launcher, self.size = launcher, size
        self.queued: list[tuple[int, list[str]]] = []

    def free_workers(self) -> int:
        return self.size - len(self.queued)

    def start_job(self, num: int, overrides: list[str], config: Any = None) -> None:
        self.queued.append((num, overrides))  # the launcher's ``launch`` composes the configs itself

    def wait_jobs(self) -> list[tuple[int, Any]]:
        batch, self.queued = self.queued, []
        returns = self.launcher.launch([overrides for _, overrides in batch], initial_job_idx=batch[0][0])
        return [(num, ret) for (num, _), ret in zip(batch, returns, strict=True)]


@dataclass
class TrialRun:
    """A trial being run: its seeds not started yet, those running, and how each ended (status, value)."""

    trial: Any
    overrides: list[str]
    waiting: deque[int]
    configs: dict[int, Any] = field(default_factory=dict)  # a job's config composed by the check, not yet started
    running: set[int] = field(default_factory=set)
    ended: dict[int, tuple[str, float | None]] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)  # seed index -> why its job failed


class Search:
    """One launch of a search on ``study`` (which may hold trials of earlier launches)."""

    def __init__(self, settings: SearchSettings, space: SearchSpace, study: Any, jobs: Jobs, sweep_dir: Path,
                 check: Callable[[list[str]], Any], base_seed: int, n_trials: int) -> None:
        self.settings, self.space, self.study, self.jobs = settings, space, study, jobs
        self.sweep_dir, self.check, self.base_seed, self.n_trials = sweep_dir, check, base_seed, n_trials
        self.trials: dict[int, TrialRun] = {}
        self.told: dict[str, int] = {"completed": 0, "pruned": 0, "failed": 0}

    def run(self) -> dict[str, int]:
        """Run trials until ``n_trials`` count in the study; how many this launch told completed/pruned/failed."""
        while True:
            while self.jobs.free_workers() > 0 and self._start_next():
                pass
            if not any(run.running for run in self.trials.values()):
                return self.told
            for num, ret in self.jobs.wait_jobs():
                self._ended(num, ret)

    def _start_next(self) -> bool:
        """Start one job; False when there is none to start."""
        run = next((r for r in self.trials.values() if r.waiting), None) or self._ask()
        if run is None:
            return False
        index = run.waiting.popleft()
        number, seeds = run.trial.number, self.settings.seeds_per_trial
        overrides = self._job_overrides(run, index)
        done = reusable(self.sweep_dir / _subdir(number, index, seeds), task_overrides(overrides))
        if done is not None:  # this very job ended earlier (same folder, same overrides): its result stands
            log.info(f"\ttrial {number} seed {index}: {done[0]} earlier, not run again")
            run.ended[index] = done
            self._finish_if_done(run)
            return True
        self.jobs.start_job(number * seeds + index, overrides, run.configs.pop(index, None))
        run.running.add(index)
        return True

    def _ask(self) -> TrialRun | None:
        """A new trial (an enqueued one first), or None when ``n_trials`` are counted; a trial whose config
        fails tricklab's checks is told failed here and the next one asked."""
        from optuna.trial import TrialState

        while counted_trials(self.study) < self.n_trials:
            trial = self.study.ask(self.space.distributions)
            overrides = self.space.overrides(trial.params)
            run = TrialRun(trial, overrides, deque(range(self.settings.seeds_per_trial)))
            try:  # the trial's first job, composed once: checked here, then started with this config
                run.configs[0] = self.check(self._job_overrides(run, 0))
            except ConfigError as err:
                log.warning(f"trial {trial.number} not run: {err}")
                trial.set_user_attr("error", str(err))
                self.study.tell(trial, state=TrialState.FAIL)
                self.told["failed"] += 1
                continue
            log.info(f"trial {trial.number}: {' '.join(overrides[len(self.space.fixed):])}")
            self.trials[trial.number] = run
            return run
        return None

    def _job_overrides(self, run: TrialRun, index: int) -> list[str]:
        """The trial's overrides; with several seeds, seed=<base + index> in place of a seed= given."""
        seeds = self.settings.seeds_per_trial
        overrides = [o for o in run.overrides if seeds == 1 or not o.startswith("seed=")]
        seed = [f"seed={self.base_seed + index}"] if seeds > 1 else []
        return [*overrides, *seed, f"hydra.sweep.subdir={_subdir(run.trial.number, index, seeds)}",
                f"+hydra.job.env_set.{TRIAL_ENV}={run.trial.number}", f"+hydra.job.env_set.{SEED_ENV}={index}"]

    def _ended(self, num: int, ret: Any) -> None:
        from hydra.core.utils import JobStatus

        seeds = self.settings.seeds_per_trial
        run = self.trials[num // seeds]
        index = num % seeds
        run.running.discard(index)
        try:
            record = read_metrics(Path(ret.working_dir)) or {}
        except (OSError, ValueError):  # cut short by the fault that failed the job: the job's error says why
            record = {}
        ok = ret.status == JobStatus.COMPLETED
        status = record.get("status") or ("completed" if ok else "failed")
        run.ended[index] = (status if ok else "failed", ret.return_value if ok else None)
        if not ok:
            run.errors[index] = job_error(ret, record)
        if status == "pruned":  # its siblings not started yet would only be pruned too
            run.waiting.clear()
        self._finish_if_done(run)

    def _finish_if_done(self, run: TrialRun) -> None:
        """Tell the study the trial's result once every seed it will run has ended."""
        from optuna.trial import TrialState

        if run.waiting or run.running:
            return
        statuses = [status for status, _ in run.ended.values()]
        values = [run.ended[index][1] for index in sorted(run.ended)]  # by seed, not by the order they ended
        trial = run.trial
        if "pruned" in statuses:
            self.study.tell(trial, state=TrialState.PRUNED)
            outcome = "pruned"
        elif "failed" in statuses or any(v is None for v in values):
            if run.errors:  # why, for the closing lines and the report (a trial with several seeds: the first's)
                index = min(run.errors)
                seed = f"seed {index}: " if self.settings.seeds_per_trial > 1 else ""
                trial.set_user_attr("error", seed + run.errors[index])
            self.study.tell(trial, state=TrialState.FAIL)
            outcome = "failed"
        else:
            trial.set_user_attr("seed_values", values)
            trial.set_user_attr("value_std", statistics.stdev(values) if len(values) > 1 else 0.0)
            self.study.tell(trial, statistics.fmean(values))
            outcome = "completed"
        self.told[outcome] += 1
        del self.trials[trial.number]
        log.info(f"trial {trial.number} {outcome}" + (f" ({statistics.fmean(values):.4f})"
                                                      if outcome == "completed" else ""))


def job_error(ret: Any, record: dict[str, Any]) -> str:
    """Why a job failed, in one line: its metrics.json's error, else the error its launcher recorded."""
    if record.get("error"):
        return str(record["error"])
    try:
        _ = ret.return_value
    except BaseException as err:  # a failed JobReturn re-raises the job's error
        return str(err) or type(err).__name__
    return "failed (no error recorded)"


def _subdir(number: int, index: int, seeds: int) -> str:
    """A trial's job folder, inside the sweep folder: named by Optuna's trial number."""
    return f"trial_{number}" if seeds == 1 else f"trial_{number}/seed_{index}"


def task_overrides(overrides: list[str]) -> list[str]:
    """The overrides a job records in its metrics.json (Hydra's task overrides: no hydra.* or hydra/ ones)."""
    return [o for o in overrides if not o.lstrip("+~").startswith("hydra")]


def reusable(job_dir: Path, overrides: list[str]) -> tuple[str, float | None] | None:
    """(status, value) of a job that completed in ``job_dir`` with exactly ``overrides``; None when it has to
    run (a pruned, failed or cut-short one runs again). A folder holding a run of other overrides (a study
    started afresh in an old sweep folder) is moved aside first, so that nothing of it (metrics, checkpoints)
    is taken for this job."""
    from tricklab.run.job import objective

    record = read_metrics(job_dir) if job_dir.is_dir() else None
    if record is None:
        return None
    if sorted(record.get("overrides", [])) != sorted(overrides):
        aside = job_dir.with_name(f"{job_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
        job_dir.rename(aside)
        log.warning(f"{job_dir} held a run of other overrides; moved to {aside.name}")
        return None
    if record.get("status") == "completed":
        return "completed", objective(record)
    return None
