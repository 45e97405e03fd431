"""What the pool and a worker process say to each other (pickled over their socket)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

# A job's stdout and stderr, in its folder.
OUTPUT_LOG = "output.log"


@dataclass
class Setup:
    """Sent once to each worker: what to run and Hydra's context for ``run_job``."""

    task_module: str
    task_name: str
    job_name: str
    hydra_context: Any


@dataclass
class JobOrder:
    """One job to run: its number, its overrides, its resolved sweep config and its folder."""

    num: int
    overrides: list[str]
    config: DictConfig
    job_dir: Path


@dataclass
class PackOrder:
    """Jobs to train together as one fused pack (``hydra.launcher.fuse``); the worker answers with a list of
    JobOutcomes, one per job, in order."""

    orders: list[JobOrder]


def orders_of(item: JobOrder | PackOrder) -> list[JobOrder]:
    """The jobs of what a worker is given."""
    return item.orders if isinstance(item, PackOrder) else [item]


@dataclass
class JobOutcome:
    """What a worker reports back: Hydra's return value, or the error that ended the job."""

    num: int
    ok: bool
    value: Any
    error: str | None
    pid: int
    device: str
    started: float
    ended: float
