"""Helpers the tests import: compose a config, run the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from tricklab.config import CONF_DIR, register_resolvers

register_resolvers()
REPO = Path(__file__).resolve().parents[1]  # this checkout: its train.py, src/ and outputs/


def compose_config(overrides: list[str], output_dir: Path, data_dir: Path) -> DictConfig:
    """The composed config for ``overrides`` with outputs and data redirected to test folders."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[f"paths.output_dir={output_dir}", f"paths.data_dir={data_dir}", *overrides],
        )
    with open_dict(cfg):
        cfg.callbacks.progress_bar = "none"
    return cfg



def run_cli(args: list[str], cwd: Path | None = None, timeout: int = 600, env: dict | None = None,
            script: list[str] | None = None):
    """``python train.py args`` (or ``python <script> args``) in a subprocess; returns the CompletedProcess
    (text output)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run(
        [sys.executable, *(script or [str(REPO / "train.py")]), *args],
        cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=timeout,
    )
