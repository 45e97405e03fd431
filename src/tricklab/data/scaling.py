"""Input scaling, with statistics taken from the training split only (never val or test).

- raw: x unchanged
- unit: (x - min)/(max - min) into [0, 1]
- symmetric: 2·unit - 1 into [-1, 1]
- standardize: (x_j - μ_j)/max(σ_j, f·σ_c) per feature j (every element of a sample), so each training input
  has mean 0 and std 1; f = ``std_floor`` bounds the gain of a near-constant feature (see ``feature_scale``)
- standardize_channel: (x - μ_c)/σ_c per channel c (pooled over the positions of c)

A feature (or channel) that is constant on the training split gets σ = 1, as scikit-learn's ``StandardScaler``
does (``_is_constant_feature``, ``_handle_zeros_in_scale``): it maps to 0 there, never to inf or NaN.
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


def fit_scaler(kind: str, x_train: np.ndarray, std_floor: float = 0.0) -> Scaler:
    """The Scaler for ``kind`` (one of ``tricklab.choices.SCALES``) fitted on ``x_train``; ``std_floor``: see
    ``feature_scale``."""
    if kind == "raw":
        return Scaler(np.zeros(1, np.float32), np.ones(1, np.float32))
    if kind in ("unit", "symmetric"):
        lo, hi = float(x_train.min()), float(x_train.max())
        span = (hi - lo) or 1.0
        if kind == "unit":
            return Scaler(np.float32(lo), np.float32(1.0 / span))
        return Scaler(np.float32(lo + span / 2), np.float32(2.0 / span))
    if kind == "standardize_channel":
        mean, std = _channel_stats(x_train)
        return _standardizer(mean, np.where(std > 0, std, 1.0))
    if kind == "standardize":
        return _standardizer(x_train.mean(axis=0, dtype=np.float64)[None], feature_scale(x_train, std_floor))
    raise ValueError(f"unknown scale {kind!r}")


def feature_scale(x_train: np.ndarray, std_floor: float) -> np.ndarray:
    """σ_j of each feature, floored: max(σ_j, f·σ_c), σ_c the pooled σ of feature j's channel, f = ``std_floor``.

    Why the floor: a feature that barely varies in training (a border pixel of scikit-learn's digits has σ < 0.1
    on its 0–16 scale) would be multiplied by 1/σ_j, and a test value off its training mean become a z-score of
    50. With the floor no feature is amplified more than 1/f times what ``standardize_channel`` would do, so
    |z| ≤ (the channel's range)/(f·σ_c); f = 0 is scikit-learn's StandardScaler, f = 1 never amplifies beyond the
    channel's σ. Constant features (and channels) get σ = 1.
    """
    std = x_train.std(axis=0, dtype=np.float64)[None]
    _, channel_std = _channel_stats(x_train)
    floored = np.maximum(std, std_floor * channel_std)
    constant = _is_constant(x_train.var(axis=0, dtype=np.float64), x_train.mean(axis=0, dtype=np.float64),
                            len(x_train))[None]
    return np.where(constant | (floored == 0), 1.0, floored)


def _is_constant(var: np.ndarray, mean: np.ndarray, n: int) -> np.ndarray:
    """Whether a variance is within the rounding error of computing it for a constant feature (scikit-learn's
    ``_is_constant_feature``: var ≤ n·ε·var + (n·mean·ε)²), rather than a real spread."""
    eps = np.finfo(np.float64).eps
    return var <= n * eps * var + (n * mean * eps) ** 2


def _channel_stats(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """μ_c and σ_c of each channel, pooled over samples and positions, shaped (1, channels, 1, ...)."""
    channel_shape = (1, x_train.shape[1]) + (1,) * (x_train.ndim - 2)
    axes = (0,) + tuple(range(2, x_train.ndim))
    mean = x_train.mean(axis=axes, dtype=np.float64).reshape(channel_shape)
    std = x_train.std(axis=axes, dtype=np.float64).reshape(channel_shape)
    return mean, std


def _standardizer(mean: np.ndarray, std: np.ndarray) -> Scaler:
    return Scaler(mean.astype(np.float32), (1.0 / std).astype(np.float32))
