"""CIFAR-10's python pickle batches (``cifar-10-batches-py/``), read without torchvision's md5 check."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from tricklab.errors import DataError


def read_batches(folder: Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) from the named pickle batches in ``folder``."""
    images, labels = [], []
    for name in names:
        path = folder / name
        try:
            with path.open("rb") as f:
                batch = pickle.load(f, encoding="bytes")
            data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            batch_labels = np.asarray(batch[b"labels"], dtype=np.int64)
        except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as err:
            raise DataError(
                f"{path} is corrupt or unreadable ({type(err).__name__}: {err}); a CIFAR-10 batch is a "
                "pickled dict with b'data' (N x 3072 uint8) and b'labels' (N ints)."
            ) from None
        if len(data) != len(batch_labels):
            raise DataError(f"{path} is corrupt: {len(data)} images but {len(batch_labels)} labels.")
        images.append(data)
        labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels)
