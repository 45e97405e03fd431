"""A Hydra task function for testing the worker pool without training: it reports the GPU its worker owns.

Workers import it by name (``sweep_tasks.report_gpu``), so tests put this folder on the workers' PYTHONPATH.
"""

from __future__ import annotations

import os
import signal
import time

from omegaconf import DictConfig

CRASHING_SEED = 13


def report_gpu(cfg: DictConfig) -> str:
    """Hold the worker a moment (so jobs overlap), then return CUDA_VISIBLE_DEVICES as the job saw it.
    The seed CRASHING_SEED kills its own worker process instead, as a segfault or the OOM killer would."""
    if cfg.seed == CRASHING_SEED:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.5)
    return os.environ["CUDA_VISIBLE_DEVICES"]
