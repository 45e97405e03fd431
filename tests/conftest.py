"""Shared fixtures: compose configs with Hydra's compose API and run them in-process or as subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from tricklab.config import CONF_DIR, PROJECT_ROOT, register_resolvers

register_resolvers()

# Never reach W&B servers, and keep the console quiet.
os.environ.pop("WANDB_API_KEY", None)
os.environ["WANDB_SILENT"] = "true"
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data cache for the session (MNIST-1D is generated once, ~1 s)."""
    return tmp_path_factory.mktemp("data")


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


@pytest.fixture
def make_config(tmp_path: Path, data_dir: Path):
    """make_config([overrides]) -> composed DictConfig writing under tmp_path."""

    def make(overrides: list[str] | None = None) -> DictConfig:
        return compose_config(list(overrides or []), tmp_path / "outputs", data_dir)

    return make


@pytest.fixture
def run_training(tmp_path: Path, data_dir: Path):
    """run_training([overrides], name) -> metrics dict of a real in-process run, logger off by default."""
    from tricklab.train import RunContext, run

    def train(overrides: list[str] | None = None, name: str = "run", choices: dict | None = None) -> dict:
        overrides = list(overrides or [])
        if not any(o.startswith("logger=") for o in overrides):
            overrides.insert(0, "logger=none")
        cfg = compose_config(overrides, tmp_path / "outputs", data_dir)
        return run(cfg, RunContext(tmp_path / name, choices or {}, overrides))

    return train


def run_cli(args: list[str], cwd: Path | None = None, timeout: int = 600, env: dict | None = None):
    """``python train.py args`` in a subprocess; returns the CompletedProcess (text output)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "train.py"), *args],
        cwd=cwd or PROJECT_ROOT, env=full_env, capture_output=True, text=True, timeout=timeout,
    )
