"""Input scaling, with statistics taken from the training split only (never val or test).

- raw: x unchanged
- unit: (x - min)/(max - min) into [0, 1]
- symmetric: 2·unit - 1 into [-1, 1]
- standardize: (x - μ_c)/σ_c per channel c, so the training inputs have mean 0 and std 1
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scaler:
    """x ↦ (x - shift)·scale, with shift and scale broadcast over (N, channels, *positions)."""

    shift: np.ndarray
    scale: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.shift) * self.scale).astype(np.float32, copy=False)


def fit_scaler(kind: str, x_train: np.ndarray) -> Scaler:
    """The Scaler for ``kind`` (raw | unit | symmetric | standardize) fitted on ``x_train``."""
    channel_shape = (1, x_train.shape[1]) + (1,) * (x_train.ndim - 2)
    if kind == "raw":
        return Scaler(np.zeros(1, np.float32), np.ones(1, np.float32))
    if kind in ("unit", "symmetric"):
        lo, hi = float(x_train.min()), float(x_train.max())
        span = (hi - lo) or 1.0
        if kind == "unit":
            return Scaler(np.float32(lo), np.float32(1.0 / span))
        return Scaler(np.float32(lo + span / 2), np.float32(2.0 / span))
    if kind == "standardize":
        axes = (0,) + tuple(range(2, x_train.ndim))
        mean = x_train.mean(axis=axes, dtype=np.float64).reshape(channel_shape)
        std = x_train.std(axis=axes, dtype=np.float64).reshape(channel_shape)
        return Scaler(mean.astype(np.float32), (1.0 / np.where(std > 0, std, 1.0)).astype(np.float32))
    raise ValueError(f"unknown scale {kind!r}")
