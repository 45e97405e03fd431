"""Which GPU and which CPU cores each worker of a local sweep owns.

Every worker gets its own slot for its whole life (a replacement worker inherits the slot of the one that
died), and a worker runs one job at a time, so a GPU runs at most as many concurrent jobs as it has slots:
one by default, ``jobs_per_gpu`` when set (small nets are launch-bound: one job leaves most of a GPU idle, and
the processes' kernels then interleave on it). The CPU cores are always split disjointly. The slot becomes the
worker's environment before Python starts in it: ``CUDA_VISIBLE_DEVICES`` (CUDA then sees only that GPU, as
device 0) and one OpenMP/MKL thread per core it owns, with ``OMP_WAIT_POLICY=PASSIVE`` so idle threads sleep
instead of spinning on a core another worker needs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from tricklab.errors import ConfigError


@dataclass(frozen=True)
class Slot:
    """What one worker owns: GPU ids (empty: CPU only) and the CPU cores it runs on."""

    gpus: tuple[str, ...]
    cores: tuple[int, ...]

    def env(self) -> dict[str, str]:
        """The environment a worker process starts with."""
        return {"CUDA_VISIBLE_DEVICES": ",".join(self.gpus), **thread_env(len(self.cores))}

    @property
    def device(self) -> str:
        """How the manifest names the slot's device: ``cuda:<id>`` or ``cpu``."""
        return f"cuda:{','.join(self.gpus)}" if self.gpus else "cpu"


def thread_env(threads: int) -> dict[str, str]:
    """The environment that holds OpenMP and MKL to ``threads`` threads, idle ones asleep."""
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}


def plan_slots(workers: int | None, gpus: Sequence[str], cores: Sequence[int], jobs_per_gpu: int = 1) -> list[Slot]:
    """One slot per worker. With GPUs: one GPU each, dealt round-robin, so that no GPU gets more than
    ``jobs_per_gpu`` slots and a sweep of fewer workers spreads over all GPUs (workers ≤ GPUs × jobs_per_gpu;
    null = that many). Without: ``workers`` CPU workers (null = one per core, each owning its core, as
    ``tricklab study`` has always run its jobs); ``jobs_per_gpu`` above 1 is then refused
    rather than ignored, since it cannot mean what was asked. The cores are split into disjoint, nearly equal
    shares; with more workers than cores each worker gets one core, shared round-robin."""
    if not _positive_int(jobs_per_gpu):
        raise ConfigError(f"hydra.launcher.jobs_per_gpu={jobs_per_gpu} is not allowed; it must be a positive "
                          f"integer (how many workers share each GPU; default 1).")
    if workers is not None and not _positive_int(workers):
        raise ConfigError(f"hydra.launcher.workers={workers} is not allowed; it must be a positive integer or null.")
    if not gpus and jobs_per_gpu > 1:
        raise ConfigError(
            f"hydra.launcher.jobs_per_gpu={jobs_per_gpu} is not allowed without GPUs, and no GPU is given "
            f"(hydra.launcher.gpus=[], or auto found none); jobs_per_gpu shares each GPU between workers, so "
            f"without GPUs it must be 1. For several CPU workers set hydra.launcher.workers instead."
        )
    if gpus and workers is not None and workers > len(gpus) * jobs_per_gpu:
        raise ConfigError(
            f"hydra.launcher.workers={workers} but only {len(gpus)} GPU(s) ({','.join(gpus)}) are given with "
            f"hydra.launcher.jobs_per_gpu={jobs_per_gpu}; each GPU takes at most jobs_per_gpu workers, so workers "
            f"must be at most {len(gpus) * jobs_per_gpu} (or null for that many), or raise jobs_per_gpu, "
            f"or set hydra.launcher.gpus=[] to run CPU workers."
        )
    count = workers or (len(gpus) * jobs_per_gpu if gpus else len(cores))
    return [Slot(gpus=(gpus[i % len(gpus)],) if gpus else (), cores=share)
            for i, share in enumerate(split_cores(cores, count))]


def _positive_int(value: object) -> bool:
    """True for an int ≥ 1 that is not a bool (YAML's ``true`` is an int to Python)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def split_cores(cores: Sequence[int], parts: int) -> list[tuple[int, ...]]:
    """``cores`` cut into ``parts`` contiguous shares whose sizes differ by at most one (never empty)."""
    if parts >= len(cores):
        return [(cores[i % len(cores)],) for i in range(parts)]
    size, extra = divmod(len(cores), parts)
    shares, start = [], 0
    for i in range(parts):
        end = start + size + (i < extra)
        shares.append(tuple(cores[start:end]))
        start = end
    return shares


def visible_gpus(setting: object) -> list[str]:
    """The GPU ids to share out: ``auto`` = those CUDA_VISIBLE_DEVICES allows, else every GPU torch sees; a list
    (or a string ``"0,1"``) names them, and each must be one this machine has (a worker on a missing GPU would
    fail every job, or run on the CPU unseen)."""
    if setting == "auto":
        return _machine_gpus()
    ids = _given_ids(setting)
    present = _machine_gpus()
    if missing := [g for g in ids if g not in present]:
        raise ConfigError(
            f"hydra.launcher.gpus={_show(setting)} is not allowed: this machine has no GPU {', '.join(missing)} "
            f"(it has {', '.join(present) or 'none'}); hydra.launcher.gpus must be auto, [] for CPU workers, or a "
            f"list of the GPU ids it has.")
    return ids


def _given_ids(setting: object) -> list[str]:
    """The GPU ids of a list or a comma-separated string, each a non-negative integer, given once."""
    parts = setting.split(",") if isinstance(setting, str) else setting
    if isinstance(parts, (list, tuple)) or (hasattr(parts, "__iter__") and not isinstance(parts, (str, dict))):
        ids = [str(g).strip() for g in parts if str(g).strip()]
        if all(g.isdigit() for g in ids) and not any(isinstance(g, bool) for g in parts) and len(set(ids)) == len(ids):
            return ids
    raise ConfigError(
        f"hydra.launcher.gpus={_show(setting)} is not allowed; hydra.launcher.gpus must be auto (every visible GPU), "
        f"[] (CPU workers), or GPU ids, each once: a list like [0,1] or a string like '0,1' (a count such as 5 is "
        f"not a list of ids: write [0,1,2,3,4]).")


def _show(setting: object) -> str:
    return repr(setting) if isinstance(setting, str) else str(list(setting) if hasattr(setting, "__iter__")
                                                                   and not isinstance(setting, dict) else setting)


def _machine_gpus() -> list[str]:
    """The GPU ids this process may use: CUDA_VISIBLE_DEVICES when set, else every GPU torch sees."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def usable_cores() -> list[int]:
    """The CPU cores this process may run on."""
    return sorted(os.sched_getaffinity(0))
