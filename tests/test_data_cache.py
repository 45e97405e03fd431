"""Datasets kept between the jobs of one process (tricklab.data.cache): the same data config loads once and
gives the same tensors, any other loads anew, training never writes into them, and the cache stays bounded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from tricklab.data.cache import DatasetCache, LoadedData
from tricklab.data.datamodule import TensorDataModule
from tricklab.data.sources import SOURCES
from tricklab.errors import ConfigError

DIGITS = {"name": "digits", "test_fraction": 0.2, "scale": "standardize", "std_floor": 0.1, "batch_size": 64,
          "val_fraction": 0.1, "subset": None, "data_seed": 0, "root": None, "download": False}


@pytest.fixture
def loads(monkeypatch, fresh_datasets) -> dict[str, int]:
    """How many times each source's loader has read its data in this test (digits and MNIST-1D)."""
    counts = {"digits": 0, "mnist1d": 0}
    for name in counts:
        def counted(cfg, data_dir, name=name, load=SOURCES[name]):
            counts[name] += 1
            return load(cfg, data_dir)

        monkeypatch.setitem(SOURCES, name, counted)
    return counts


def test_the_same_data_config_is_loaded_once_and_gives_the_same_tensors(tmp_path, loads):
    first = TensorDataModule(DIGITS, tmp_path, seed=0)
    second = TensorDataModule({**DIGITS, "batch_size": 16}, tmp_path, seed=3)  # batching only: same tensors
    assert loads["digits"] == 1
    assert (second.input_shape, second.num_classes, second.sizes()) == (first.input_shape, first.num_classes,
                                                                        first.sizes())
    for split, (x, y) in first.tensors.items():
        assert second.tensors[split][0] is x and second.tensors[split][1] is y
    assert second.batch_size == 16 and second.seed == 3  # what is not in the key is still the job's own


@pytest.mark.parametrize("change", [{"scale": "unit"}, {"subset": 100}, {"data_seed": 1}, {"val_fraction": 0.2},
                                    {"test_fraction": 0.3}])
def test_a_different_data_config_loads_anew(tmp_path, loads, change):
    first = TensorDataModule(DIGITS, tmp_path, seed=0)
    other = TensorDataModule({**DIGITS, **change}, tmp_path, seed=0)
    assert loads["digits"] == 2
    assert not all(torch.equal(other.tensors[s][0], first.tensors[s][0]) for s in first.tensors)
    TensorDataModule(DIGITS, tmp_path / "elsewhere", seed=0)  # another data folder: never shared
    assert loads["digits"] == 3


def test_a_failed_load_is_not_kept(tmp_path, loads):
    for _ in range(2):
        with pytest.raises(ConfigError, match="data.subset=99999"):
            TensorDataModule({**DIGITS, "subset": 99999}, tmp_path, seed=0)
    assert loads["digits"] == 2


def test_training_on_kept_tensors_leaves_them_unchanged(make_config, run_training, data_dir, loads):
    overrides = ["data.subset=300", "trainer.max_epochs=2", "norm=batch", "dropout.p=0.2", "averaging=swa"]
    cfg = make_config(overrides)
    kept = TensorDataModule(OmegaConf.to_container(cfg.data, resolve=True), Path(cfg.paths.data_dir), cfg.seed)
    before = {split: (x.clone(), y.clone()) for split, (x, y) in kept.tensors.items()}
    assert run_training(overrides)["status"] == "completed"
    assert loads["mnist1d"] == 1  # the run trained, validated and tested on the kept tensors
    for split, (x, y) in kept.tensors.items():
        assert torch.equal(x, before[split][0]) and torch.equal(y, before[split][1]), split


def fake(megabytes: int) -> LoadedData:
    x = torch.zeros(megabytes << 18)  # 4 bytes each: `megabytes` MiB
    return LoadedData({"train": (x, torch.zeros(0, dtype=torch.int64))}, (1,), 2)


def test_the_least_recently_used_dataset_goes_first_and_a_too_large_one_is_not_kept():
    cache = DatasetCache(max_bytes=3 << 20)
    for key in ("a", "b", "c"):
        cache.get(key, lambda: fake(1))
    cache.get("a", lambda: pytest.fail("a is kept"))  # a is now the most recently used
    cache.get("d", lambda: fake(1))
    assert list(cache.kept) == ["c", "a", "d"]  # b went
    big = fake(4)
    assert cache.get("big", lambda: big) is big and "big" not in cache.kept
    assert list(cache.kept) == ["c", "a", "d"]
