"""Shared fixtures: configs composed with Hydra's compose API, real runs in-process."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from helpers import compose_config
from omegaconf import DictConfig

# Never reach W&B servers, and keep the console quiet.
os.environ.pop("WANDB_API_KEY", None)
os.environ["WANDB_SILENT"] = "true"
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# hparams_search=optuna needs the [optuna] extra (CI installs it); without it its tests are not collected.
collect_ignore = [] if importlib.util.find_spec("optuna") else ["test_search.py"]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data cache for the session (MNIST-1D is generated once, ~1 s)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def make_config(tmp_path: Path, data_dir: Path):
    """make_config([overrides]) -> composed DictConfig writing under tmp_path."""

    def make(overrides: list[str] | None = None) -> DictConfig:
        return compose_config(list(overrides or []), tmp_path / "outputs", data_dir)

    return make


@pytest.fixture
def run_training(tmp_path: Path, data_dir: Path):
    """run_training([overrides], name) -> metrics dict of a real in-process run, logger off by default."""
    from tricklab.run.context import RunContext
    from tricklab.run.fit import run

    def train(overrides: list[str] | None = None, name: str = "run", choices: dict | None = None) -> dict:
        overrides = list(overrides or [])
        if not any(o.startswith("logger=") for o in overrides):
            overrides.insert(0, "logger=none")
        cfg = compose_config(overrides, tmp_path / "outputs", data_dir)
        return run(cfg, RunContext(tmp_path / name, choices or {}, overrides))

    return train


@pytest.fixture
def fresh_datasets(monkeypatch: pytest.MonkeyPatch):
    """An empty in-process dataset cache for this test (tricklab.data.cache), so that it sees every load."""
    from tricklab.data import datamodule
    from tricklab.data.cache import MAX_BYTES, DatasetCache

    cache = DatasetCache(MAX_BYTES)
    monkeypatch.setattr(datamodule, "DATASETS", cache)
    return cache
