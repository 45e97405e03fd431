"""Which GPU and which CPU cores each worker of a local sweep owns.

Every worker gets its own slot for its whole life (a replacement worker inherits the slot of the one that
died), and a worker runs one job at a time, so no two concurrent jobs ever share a GPU. The slot becomes the
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


def plan_slots(workers: int | None, gpus: Sequence[str], cores: Sequence[int]) -> list[Slot]:
    """One slot per worker. With GPUs: one GPU each (workers ≤ GPUs; null = one worker per GPU).
    Without: ``workers`` CPU workers (null = 1). The cores are split into disjoint, nearly equal shares;
    with more workers than cores each worker gets one core, shared round-robin."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"hydra.launcher.workers={workers} is not allowed; it must be a positive integer or null.")
    if gpus and workers is not None and workers > len(gpus):
        raise ConfigError(
            f"hydra.launcher.workers={workers} but only {len(gpus)} GPU(s) ({','.join(gpus)}) are given; each "
            f"worker owns one GPU, so workers must be at most {len(gpus)} (or null for one per GPU), "
            f"or set hydra.launcher.gpus=[] to run CPU workers."
        )
    count = workers or (len(gpus) if gpus else 1)
    return [Slot(gpus=(gpus[i],) if gpus else (), cores=share) for i, share in enumerate(split_cores(cores, count))]


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


def visible_gpus(setting: str | Sequence[int | str]) -> list[str]:
    """The GPU ids to share out: ``auto`` = those CUDA_VISIBLE_DEVICES allows, else every GPU torch sees."""
    if setting != "auto":
        return [str(g) for g in setting]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def usable_cores() -> list[int]:
    """The CPU cores this process may run on."""
    return sorted(os.sched_getaffinity(0))
