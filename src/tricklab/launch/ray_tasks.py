"""A sweep's jobs as Ray tasks (``hydra/launcher=ray``): settings checked, Ray started or joined, a task per job.

Each job is one call of a remote function with ``max_calls=1``, so Ray runs it in a fresh worker process (no W&B
run, CUDA memory or seed left over from another job), which runs it as a local sweep's worker does
(``tricklab.launch.worker.run_order``: output in the job folder; a job's own failure is returned, not raised).
The remote function is a generator: it first reports where it runs (the job has started), then the outcome.

Ray's own retries are off (``max_retries=0``): Ray re-runs a task whose process died three times by default,
silently, which would hide the failure. The launcher runs such a job again only when ``hydra.launcher.max_retries``
asks for it (never a job that raised: it would raise again), and sweep.json records every retry and its cause.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tricklab.errors import ConfigError
from tricklab.launch.devices import thread_env
from tricklab.launch.messages import JobOrder, JobOutcome, Setup
from tricklab.launch.worker import current_device, describe, run_order, start

log = logging.getLogger(__name__)

# How long an address may take to accept a TCP connection before the sweep is refused.
CONNECT_TIMEOUT_S = 10.0

# address values, as the error for a bad one lists them.
ADDRESSES = ("null (a new local Ray instance), auto (the cluster that `ray start` runs on this machine), "
             "<head ip>:6379 (a cluster's head) or ray://<head ip>:10001 (Ray Client)")


@dataclass(frozen=True)
class RaySettings:
    """hydra.launcher's settings for Ray, checked: where to run and what each job asks of Ray."""

    address: str | None
    num_cpus: float
    num_gpus: float | None  # None: 1 where the cluster has GPUs, else 0 (decided once Ray runs)
    max_retries: int
    init: dict[str, Any]

    @classmethod
    def checked(cls, address: Any, num_cpus: Any, num_gpus: Any, max_retries: Any,
                init: Mapping[str, Any] | None) -> RaySettings:
        """The settings, or a ConfigError naming the first bad one and what is allowed."""
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ConfigError(f"hydra.launcher.address={address} is not allowed; it must be {ADDRESSES}.")
        if not _resource(num_cpus) or num_cpus == 0:
            raise ConfigError(f"hydra.launcher.num_cpus={num_cpus} is not allowed; it must be the CPUs each job "
                              f"asks of Ray: a fraction below 1 or a whole number, above 0.")
        if num_gpus is not None and not _resource(num_gpus):
            raise ConfigError(
                f"hydra.launcher.num_gpus={num_gpus} is not allowed; it must be the GPUs each job asks of Ray: "
                f"0 (CPU only), a fraction below 1 (0.25: four jobs share a GPU), a whole number, or null "
                f"(1 where the cluster has GPUs, else 0)."
            )
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"hydra.launcher.max_retries={max_retries} is not allowed; it must be a whole number "
                              f"≥ 0: how often a job whose process died is run again (0: it is recorded failed).")
        return cls(address, num_cpus, num_gpus, max_retries, dict(init or {}))


@dataclass(frozen=True)
class TaskResources:
    """What every job's task asks of Ray, and how often a job whose process died is run again."""

    num_cpus: float
    num_gpus: float
    max_retries: int

    @classmethod
    def on(cls, cluster: Mapping[str, float], settings: RaySettings) -> TaskResources:
        """What each job asks of a cluster that has the ``cluster`` resources: num_gpus null is one GPU where
        the cluster has GPUs, else none."""
        num_gpus = settings.num_gpus
        if num_gpus is None:
            num_gpus = 1 if cluster.get("GPU", 0) >= 1 else 0
        if settings.address is None:  # a local instance never grows: a task asking for more would wait forever
            for key, resource, wanted in (("num_cpus", "CPU", settings.num_cpus), ("num_gpus", "GPU", num_gpus)):
                if wanted > (has := cluster.get(resource, 0)):
                    raise ConfigError(
                        f"hydra.launcher.{key}={wanted} is more than the local Ray instance has ({has:g}), so no job "
                        f"could ever start; it must be at most {has:g} (or give the instance more with "
                        f"hydra.launcher.init.{key}, or join a cluster with hydra.launcher.address)."
                    )
        return cls(settings.num_cpus, num_gpus, settings.max_retries)

    def env(self) -> dict[str, str]:
        """Set in the job's process before torch loads: OpenMP/MKL threads = its CPU share (at least one), and
        no GPU for a CPU job (Ray leaves CUDA_VISIBLE_DEVICES alone for tasks that ask for none)."""
        hidden = {"CUDA_VISIBLE_DEVICES": ""} if self.num_gpus == 0 else {}
        return {**thread_env(max(1, int(self.num_cpus))), **hidden}


def connect(settings: RaySettings) -> TaskResources:
    """Start a local Ray instance or join the cluster at ``settings.address`` (once per process); what each
    job's task will ask for. ConfigError when Ray is missing or cannot start or connect."""
    try:
        import ray
    except ImportError as err:
        raise ConfigError(f"hydra/launcher=ray needs Ray, which is not installed ({err}); install it with "
                          f"pip install -e '.[ray]'.") from None
    if settings.address and (why := _unreachable(settings.address)):
        raise ConfigError(f"hydra.launcher.address={settings.address}: nothing answers there ({why}); start the "
                          f"cluster first (ray start --head) or correct the address; it must be {ADDRESSES}.")
    if not ray.is_initialized():
        init = {key: value for key, value in settings.init.items() if value is not None}
        try:
            # "local" always starts a new instance; without an address Ray would join one found on this machine.
            ray.init(address=settings.address or "local", **init)
        except (ConnectionError, ValueError, TypeError, RuntimeError) as err:
            # Ray 2.60 reads the cluster's token by itself only for address auto; an explicit address needs it said.
            token = (" A cluster with token authentication (Ray's default) also needs RAY_AUTH_MODE=token and its "
                     "token (~/.ray/auth_token) on this machine when given by its address."
                     if isinstance(err, ConnectionError) and settings.address not in (None, "auto")
                     and "RAY_AUTH_MODE" not in os.environ else "")
            raise ConfigError(
                f"Ray could not start or join a cluster with hydra.launcher.address={settings.address} and "
                f"hydra.launcher.init={init} ({type(err).__name__}: {err}); address must be {ADDRESSES}; init holds "
                f"ray.init's arguments for a new local instance (num_cpus, num_gpus, include_dashboard), to be "
                f"left null when joining a cluster.{token}"
            ) from None
    return TaskResources.on(ray.cluster_resources(), settings)


@dataclass
class _Attempt:
    """One try at a job: the job, the errors of the tries before it, and where and since when it runs."""

    order: JobOrder
    retry_errors: list[str]
    started: float = field(default_factory=time.time)
    device: str = "unknown"  # until the task reports where it runs
    pid: int | None = None

    def failed(self, error: str) -> JobOutcome:
        return JobOutcome(self.order.num, False, None, error, self.pid, self.device, self.started, time.time())


def run_tasks(orders: Sequence[JobOrder], setup: Setup, resources: TaskResources,
              on_start: Callable[..., None], on_done: Callable[..., None]) -> None:
    """Run every order as a Ray task; call ``on_start(order, device, pid=, node=)`` as each starts (every try) and
    ``on_done(order, outcome, retries=)`` as each ends."""
    import ray
    from ray.exceptions import RayError, RayTaskError

    remote = ray.remote(num_cpus=resources.num_cpus, num_gpus=resources.num_gpus, max_calls=1, max_retries=0)(_job)
    from tricklab.config import ROOT_ENV, project_root

    # A Ray worker need not start in this working directory: its jobs' outputs go below this process's root.
    env = {**resources.env(), ROOT_ENV: str(project_root())}

    def submit(order: JobOrder, retry_errors: list[str]) -> None:
        running[remote.remote(setup, order, env)] = _Attempt(order, retry_errors)

    running: dict[Any, _Attempt] = {}
    for order in orders:
        submit(order, [])
    while running:
        (task,), _ = ray.wait(list(running), num_returns=1)
        attempt = running[task]
        try:
            report = ray.get(next(task))
        except RayTaskError as err:  # raised outside the job (its arguments would not unpickle: tricklab missing?)
            cause = describe(err.cause).splitlines()[0]  # Ray appends the whole traceback
            report = attempt.failed(f"the job could not start in its Ray worker ({cause})")
        except RayError as err:  # the job's process (or its node) died
            report = attempt.failed(f"the job's Ray worker process died during the job ({type(err).__name__}: "
                                    f"{str(err).splitlines()[0]})")
            if len(attempt.retry_errors) < resources.max_retries:
                del running[task]
                log.warning(f"\t#{attempt.order.num} {report.error}; running it again "
                            f"(retry {len(attempt.retry_errors) + 1} of {resources.max_retries})")
                submit(attempt.order, [*attempt.retry_errors, report.error])
                continue
        if isinstance(report, dict):  # the task started: where it runs
            attempt.started, attempt.device, attempt.pid = time.time(), report["device"], report["pid"]
            on_start(attempt.order, report["device"], pid=report["pid"], node=report["node"])
            continue
        del running[task]
        retries = {"retry_errors": attempt.retry_errors} if attempt.retry_errors else {}
        on_done(attempt.order, report, retries=len(attempt.retry_errors), **retries)


def _job(setup: Setup, order: JobOrder, env: dict[str, str]) -> Iterator[Any]:
    """The Ray task of one job, in its own fresh worker process: where it runs, then the job's outcome."""
    import ray

    os.environ.update(env)  # before torch is imported, so OpenMP and CUDA see it from the start
    yield {"device": current_device(), "pid": os.getpid(), "node": ray.util.get_node_ip_address()}
    yield run_order(order, start(setup), setup.hydra_context)


def _unreachable(address: str) -> str | None:
    """Why nothing answers at a ``host:port`` or ``ray://host:port`` address, or None (also for ``auto`` and for
    forms Ray itself rejects at once): Ray would retry an address where nothing listens for minutes."""
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not port.isdigit():
        return None
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        return f"{type(err).__name__}: {err}"
    return None


def _resource(value: Any) -> bool:
    """A quantity Ray accepts for a task: ≥ 0, and whole when above 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        return False
    return value <= 1 or float(value).is_integer()
