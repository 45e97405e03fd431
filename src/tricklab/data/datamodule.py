"""The LightningDataModule: load a dataset, hold out validation, scale, and batch by index on device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from tricklab.choices import pick
from tricklab.data.arrays import DatasetArrays
from tricklab.data.batches import IndexBatches
from tricklab.data.cache import DATASETS, LoadedData, data_key
from tricklab.data.scaling import fit_scaler
from tricklab.data.sources import SOURCES
from tricklab.errors import ConfigError


class TensorDataModule(pl.LightningDataModule):
    """A dataset that fits in memory, held as tensors on the training device.

    Loaded once per process for each data config: later jobs with the same one (a sweep worker's next job) get
    the same CPU tensors from ``tricklab.data.cache``.

    ``input_shape`` (channels, *positions) and ``num_classes`` come from the data itself. Training batches come
    in runs of ``steps_per_call`` minibatches (one under data parallelism: DDP syncs one backward per call);
    ``limit_train_batches`` (a fraction, or a count of minibatches) shortens each training epoch.
    """

    def __init__(self, cfg: dict[str, Any], data_dir: Path, seed: int, steps_per_call: int = 1,
                 limit_train_batches: int | float | None = None) -> None:
        super().__init__()
        self.steps_per_call, self.limit_train_batches = steps_per_call, limit_train_batches
        self.batch_size, self.seed = cfg["batch_size"], seed
        data = DATASETS.get(data_key(cfg, data_dir), lambda: _load(cfg, Path(data_dir)))
        self.input_shape, self.num_classes = data.input_shape, data.num_classes
        self.tensors = dict(data.tensors)  # the kept tensors themselves (never written: tricklab.data.cache)
        self.training_batches: Any = None  # what train_dataloader gave the training loop
        self.resumed_orders: list[torch.Tensor] | None = None  # its random state, from a checkpoint

    def setup(self, stage: str) -> None:
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        # trainer.precision=64-true runs the model in float64; batches bypass Lightning's input conversion
        dtype = torch.float64 if self.trainer and self.trainer.precision.startswith("64") else None
        self.tensors = {split: (x.to(device, dtype), y.to(device)) for split, (x, y) in self.tensors.items()}

    def sizes(self) -> dict[str, int]:
        return {split: len(y) for split, (_, y) in self.tensors.items()}

    def _batches(self, split: str, shuffle: bool, seed: int | None = None, **kwargs: Any) -> IndexBatches:
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        x, y = self.tensors[split]
        return IndexBatches(x, y, self.batch_size, shuffle, self.seed if seed is None else seed, rank, world, **kwargs)

    def train_dataloader(self) -> IndexBatches:
        """The training loop's batches: runs of ``steps_per_call`` minibatches (``StepBatches``), each one
        optimizer step, in an order that goes on from a checkpoint's (``state_dict``)."""
        self.training_batches = self.fresh_train_batches()
        if self.resumed_orders is not None:
            self.training_batches.set_random_states(self.resumed_orders)
        return self.training_batches

    def fresh_train_batches(self) -> IndexBatches:
        """Training batches in the run's order from its start, apart from the training loop's (SWA's statistics
        pass reads them without moving the loop's order on)."""
        return self.train_batches(self.seed)

    def state_dict(self) -> dict[str, Any]:
        """The random state of the training loop's batch order, so that a resumed run trains its remaining epochs
        in the order an uninterrupted one would."""
        return {} if self.training_batches is None else {"batch_order": self.training_batches.random_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.resumed_orders = state_dict.get("batch_order")

    def train_batches(self, seed: int) -> IndexBatches:
        """The training batches in the order the seed ``seed`` shuffles them."""
        world = self.trainer.world_size if self.trainer else 1
        steps_per_call = self.steps_per_call if world == 1 else 1
        batches = self._batches("train", shuffle=True, seed=seed, steps_per_call=steps_per_call)
        batches.max_steps = _limit(self.limit_train_batches, batches.steps)
        return batches

    def train_steps_per_epoch(self) -> int:
        """Optimizer steps per training epoch (per process)."""
        return self.train_batches(self.seed).steps

    def val_dataloader(self) -> IndexBatches:
        return self._batches("val", shuffle=False)

    def test_dataloader(self) -> IndexBatches:
        return self._batches("test", shuffle=False)


def _load(cfg: dict[str, Any], data_dir: Path) -> LoadedData:
    """Read the dataset, hold out validation, keep ``subset``, and scale with the training split's statistics."""
    arrays = pick(SOURCES, "data", cfg["name"])(cfg, data_dir)
    train, val = _split_validation(arrays, cfg["val_fraction"], cfg["data_seed"], cfg.get("subset"))
    scaler = fit_scaler(cfg["scale"], train[0], cfg["std_floor"])
    tensors = {
        "train": _tensors(scaler(train[0]), train[1]),
        "val": _tensors(scaler(val[0]), val[1]),
        "test": _tensors(scaler(arrays.x_test), arrays.y_test),
    }
    return LoadedData(tensors, arrays.input_shape, arrays.num_classes)


def _limit(limit: int | float | None, steps: int) -> int | None:
    """Lightning's ``limit_*_batches`` convention: a float is a fraction of the epoch, an int a count."""
    if limit is None:
        return None
    return max(1, int(limit * steps)) if isinstance(limit, float) else int(limit)


def _split_validation(
    arrays: DatasetArrays, val_fraction: float, data_seed: int, subset: int | None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Hold out ``val_fraction`` of the training set (fixed by ``data_seed``); keep ``subset`` of the rest."""
    order = np.random.default_rng(data_seed).permutation(len(arrays.y_train))
    n_val = int(round(val_fraction * len(order)))
    val_idx, train_idx = order[:n_val], order[n_val:]
    if subset is not None:
        if subset > len(train_idx):  # would silently train on all of it: not what the user asked for
            raise ConfigError(
                f"data.subset={subset} is not allowed: the training split has only {len(train_idx)} samples "
                f"({len(order)} training samples, {n_val} held out for validation); data.subset must be at most "
                f"{len(train_idx)}, or null for all of them."
            )
        train_idx = train_idx[:subset]
    return (arrays.x_train[train_idx], arrays.y_train[train_idx]), (arrays.x_train[val_idx], arrays.y_train[val_idx])


def _tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))
