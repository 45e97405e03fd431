"""One worker process of a local sweep: ``python -m tricklab.launch.worker <socket fd> <cores> <launcher pid>``.

The pool starts it with its slot's environment (GPU, threads) already set, so CUDA and OpenMP see only what
the worker owns from the first import. It then runs jobs one after another, each through Hydra's ``run_job``
as the basic launcher does, paying Python's and torch's start-up once. Between jobs it resets what a job could
leave behind: the environment, an open W&B run, cached CUDA memory (seeds are set by every run itself). It keeps
the datasets its jobs loaded (``tricklab.data.cache``: read-only CPU tensors, by data config), so a job whose
data config an earlier one had does not read and scale its data again.
A job's stdout and stderr go to ``<job dir>/output.log``. When the pool's end of the socket closes the worker
exits (an idle worker is simply killed at the sweep's end: it holds nothing); when the launcher dies, Linux sends
the worker SIGTERM at once (PR_SET_PDEATHSIG), mid-job included.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import inspect
import os
import sys
import time
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tricklab.launch.messages import OUTPUT_LOG, JobOrder, JobOutcome, PackOrder, Setup


def main(argv: list[str]) -> None:
    """Own the given cores, then serve jobs until the pool closes the connection."""
    from tricklab.signals import die_with_parent, raise_interrupt_on_sigterm

    die_with_parent(int(argv[3]))  # the launcher's pid: a worker never trains on as an orphan
    raise_interrupt_on_sigterm()  # its job then records itself interrupted, as on Ctrl-C
    conn = Connection(int(argv[1]))
    if argv[2]:
        os.sched_setaffinity(0, [int(c) for c in argv[2].split(",")])
    setup: Setup = conn.recv()
    task = start(setup)
    while True:
        try:
            order: JobOrder = conn.recv()
        except EOFError:
            return
        try:
            if isinstance(order, PackOrder):
                conn.send(run_pack_order(order))
            else:
                conn.send(run_order(order, task, setup.hydra_context))
        except (BrokenPipeError, ConnectionResetError, KeyboardInterrupt):  # the sweep is gone or stopped
            return


def start(setup: Setup):
    """The task function, with Hydra's globals set up in this process as in the launching one. A task module may
    offer ``preload()`` (``tricklab.train`` does: torch, Lightning): it is called here, before the first job
    arrives, as the launcher starts its workers while the sweeper is still checking the jobs."""
    task = load_task(setup.task_module, setup.task_name)
    from hydra.core.utils import JobRuntime, setup_globals

    setup_globals()
    JobRuntime.instance().set("name", setup.job_name)
    preload = getattr(sys.modules[setup.task_module], "preload", None)
    if callable(preload):
        preload()
    return task


def load_task(module: str, name: str):
    """The task function by reference; the function under ``@hydra.main``'s wrapper."""
    return inspect.unwrap(getattr(importlib.import_module(module), name))


def run_order(order: JobOrder, task, hydra_context) -> JobOutcome:
    """Run one job with its output in its folder; never raises for a job's own failure."""
    from hydra.core.utils import JobStatus, run_job

    started, env = time.time(), dict(os.environ)
    order.job_dir.mkdir(parents=True, exist_ok=True)
    ok, value, error = False, None, None
    with _output_to(order.job_dir / OUTPUT_LOG):
        try:
            ret = run_job(hydra_context=hydra_context, task_function=task, config=order.config,
                          job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
            ok = ret.status == JobStatus.COMPLETED
            value = ret.return_value if ok else _task_exception(ret)
        except SystemExit as exit_:  # the task's own exit (tricklab: code 2 after a config error)
            value = exit_
        if not ok:
            error = describe(value)
            if isinstance(value, BaseException):
                traceback.print_exception(value)
            value = None
        _reset(env)
    return JobOutcome(order.num, ok, value, error, os.getpid(), current_device(), started, time.time())


def run_pack_order(pack: PackOrder) -> list[JobOutcome]:
    """Train a pack's jobs together (``tricklab.fuse.run``), each in its own folder with its ``.hydra/`` files
    as Hydra's ``run_job`` writes them; the pack's output goes to its first job's output.log. Never raises for the
    jobs' own failure: every job of a failed pack fails with the pack's error."""
    from omegaconf import OmegaConf

    from tricklab.errors import TricklabError
    from tricklab.fuse.run import run_pack
    from tricklab.lease import job_leases
    from tricklab.run.context import context_of
    from tricklab.run.job import objective

    started, env = time.time(), dict(os.environ)
    jobs = []
    for order in pack.orders:
        saved = order.job_dir / ".hydra"
        saved.mkdir(parents=True, exist_ok=True)
        task_cfg = OmegaConf.masked_copy(order.config, [key for key in order.config if key != "hydra"])
        OmegaConf.save(task_cfg, saved / "config.yaml")
        OmegaConf.save(OmegaConf.create({"hydra": order.config.hydra}), saved / "hydra.yaml")
        OmegaConf.save(OmegaConf.create(order.overrides), saved / "overrides.yaml")
        jobs.append((task_cfg, context_of(order.config.hydra, order.job_dir, multirun=True)))
    log = pack.orders[0].job_dir / OUTPUT_LOG
    for order in pack.orders[1:]:
        with (order.job_dir / OUTPUT_LOG).open("a") as f:
            f.write(f"trained fused, in a pack of {len(pack.orders)} jobs; the pack's output: {log}\n")
    values, error = [None] * len(jobs), None
    with _output_to(log):
        try:
            with job_leases([order.job_dir for order in pack.orders]):
                values = [objective(record) for record in run_pack(jobs)]
        except (Exception, SystemExit) as err:  # the pack's failure is each of its jobs' failure
            error = describe(err)
            if not isinstance(err, TricklabError):
                traceback.print_exception(err)
            else:
                print(f"tricklab: {err}", file=sys.stderr)
        _reset(env)
    return [JobOutcome(order.num, error is None, value, error, os.getpid(), current_device(), started, time.time())
            for order, value in zip(pack.orders, values, strict=True)]


def _task_exception(ret: Any) -> BaseException:
    """The exception a failed task raised: Hydra's ``JobReturn.return_value`` re-raises it."""
    try:
        _ = ret.return_value
    except BaseException as err:  # the task's exception, whatever its kind
        return err
    raise AssertionError("a failed JobReturn returned a value")


def describe(err: Any) -> str:
    """One line naming an error."""
    if isinstance(err, SystemExit):  # tricklab exits 2 while handling a ConfigError: name that error
        cause = f": {describe(err.__context__)}" if err.__context__ is not None else f"; see {OUTPUT_LOG}"
        return f"the job exited with code {err.code}{cause}"
    return f"{type(err).__name__}: {err}".strip()


def current_device() -> str:
    """The device this process may use, as the manifest names it: ``cuda:<ids>`` or ``cpu``."""
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return f"cuda:{gpus}" if gpus else "cpu"


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (Python's and native code's) to ``path`` for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _reset(env: dict[str, str]) -> None:
    """Leave nothing of the last job for the next: environment, W&B run, CUDA cache."""
    os.environ.clear()
    os.environ.update(env)
    if "wandb" in sys.modules and sys.modules["wandb"].run is not None:
        sys.modules["wandb"].finish()
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _exit_fast() -> None:
    """Leave at once, skipping the interpreter's teardown (slow with torch and Lightning loaded; the pool stops
    its interrupted workers one after another), unless a W&B run is still open (a job stopped mid-way: W&B's exit
    hook closes it). Everything else is done: each job recorded itself and ``_reset`` followed it."""
    wandb = sys.modules.get("wandb")
    if wandb is None or wandb.run is None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
    _exit_fast()
