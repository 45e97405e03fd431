"""Hydra task functions for testing launchers: one reports the GPU its worker owns, one whether its worker ran
the module's ``preload``, one trains unless its job is the one that dies.

Job processes import them by name (``sweep_tasks.report_gpu``), so tests put this folder on their PYTHONPATH.
"""

from __future__ import annotations

import inspect
import os
import signal
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from tricklab import train  # registers tricklab's resolvers, which the config needs
from tricklab.config import CONF_DIR

CRASHING_SEED = 13
# In the folder of the job that dies: one line (its pid) per process that started it.
ATTEMPTS = "attempts.txt"


# The pids of the processes that ran ``preload``: a worker calls it (when its task module has one) as it starts.
PRELOADED: list[int] = []


def preload() -> None:
    """A task module's start-up imports, made to take SWEEP_TASKS_PRELOAD_S seconds (default 0)."""
    time.sleep(float(os.environ.get("SWEEP_TASKS_PRELOAD_S", "0")))
    PRELOADED.append(os.getpid())


def was_preloaded(cfg: DictConfig) -> bool:
    """Whether this process ran ``preload`` before this job."""
    return os.getpid() in PRELOADED


def report_gpu(cfg: DictConfig) -> str:
    """Hold the worker a moment (so jobs overlap), then return CUDA_VISIBLE_DEVICES as the job saw it.
    The seed CRASHING_SEED kills its own worker process instead, as a segfault or the OOM killer would."""
    if cfg.seed == CRASHING_SEED:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.5)
    return os.environ["CUDA_VISIBLE_DEVICES"]


def train_or_die(cfg: DictConfig) -> float | None:
    """``train.py``'s task, except that the job with seed CRASHING_SEED notes its pid in its folder's ATTEMPTS file
    and kills its own process (as the OOM killer would): how many processes ran it is then on disk."""
    from hydra.core.hydra_config import HydraConfig

    if cfg.seed == CRASHING_SEED:
        with (Path(HydraConfig.get().runtime.output_dir) / ATTEMPTS).open("a") as attempts:
            attempts.write(f"{os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGKILL)
    return inspect.unwrap(train.main)(cfg)


# ``python -c "import sweep_tasks; sweep_tasks.main()" <overrides>``: train.py with train_or_die as its task.
main = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(train_or_die)
