"""Datasets kept in memory between the jobs of one process, so that a job pays only for its training.

A sweep worker (``tricklab.launch.worker``) and Hydra's basic launcher run job after job in one process, and the
jobs of a sweep mostly share their data config: without this each of them would read, split and scale the same
files again (benchmarks/README.md has the cost). ``TensorDataModule`` asks ``DATASETS`` first.

What is shared and why that is safe:

- The key is the resolved data config minus ``batch_size`` (it only changes how the tensors are cut into
  batches), plus the data folder. Every other key (``scale``, ``subset``, ``data_seed``, ``val_fraction``,
  ``root``, ...) is part of the key, so different data configs never share.
- Jobs get the very same CPU tensors, so nothing may write into them, and nothing does: batches are gathered
  copies (``x[idx]``, ``tricklab.data.batches``), never the tensors themselves. ``TensorDataModule.setup`` moves
  them to the device into a dict of its own, but on the CPU ``.to`` returns the same tensor, so a job training
  on the CPU holds the kept tensors: ``tests/test_data_cache.py`` trains on one and checks it is unchanged.
- Only CPU tensors are kept: GPU memory is the running job's, and ``jobs_per_gpu`` workers share a GPU.
- Bounded: the least recently used datasets are dropped once those kept exceed ``MAX_BYTES``; a dataset larger
  than that alone is not kept (a single run, which loads once, behaves as it did without this).
- Files changed on disk while the process runs are not read again; a failed load (a missing file, a ``subset``
  too large) is not kept, so the next job with that config tries again and reports it again.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

# One CIFAR-10 (0.74 GB as float32) or several smaller datasets, per process: each worker of a sweep holds its own.
MAX_BYTES = 1 << 30


@dataclass(frozen=True)
class LoadedData:
    """A dataset ready to batch: scaled CPU tensors ``(x, y)`` per split, and what a model needs to know of it."""

    tensors: Mapping[str, tuple[torch.Tensor, torch.Tensor]]
    input_shape: tuple[int, ...]
    num_classes: int

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for pair in self.tensors.values() for t in pair)


def data_key(cfg: Mapping[str, Any], data_dir: Path) -> str:
    """What decides a dataset's tensors: the data config without ``batch_size``, and the data folder."""
    kept = {k: v for k, v in cfg.items() if k != "batch_size"}
    return json.dumps([kept, str(Path(data_dir).resolve())], sort_keys=True, default=str)


class DatasetCache:
    """Loaded datasets by ``data_key``, least recently used dropped first beyond ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.kept: OrderedDict[str, LoadedData] = OrderedDict()

    def get(self, key: str, load: Callable[[], LoadedData]) -> LoadedData:
        """The dataset kept under ``key``, else ``load()``'s, kept if it fits."""
        if key in self.kept:
            self.kept.move_to_end(key)
            return self.kept[key]
        data = load()
        if data.nbytes <= self.max_bytes:
            self.kept[key] = data
            while sum(d.nbytes for d in self.kept.values()) > self.max_bytes:
                self.kept.popitem(last=False)
        return data


DATASETS = DatasetCache(MAX_BYTES)
