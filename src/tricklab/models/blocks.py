"""Blocks the deep architectures share, 1-D or 2-D by ``dims``, made through a LayerKit so the run's
norm, dropout and activation reach inside them.

- Residual (He et al. 2016): y = act(F(x) + S(x)); S is the identity, or where F changes the shape, a
  parameter-free shortcut that subsamples x and zero-pads its channels (their option A for CIFAR).
- Concat (Szegedy et al. 2015): y = [B_1(x); ...; B_k(x)], parallel branches stacked along the channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tricklab.models.layers import AVG_POOL, MAX_POOL, LayerKit, sequential


class Residual(nn.Module):
    """y = post(body(x) + shortcut(x)): the only place a skip connection exists in tricklab's nets."""

    def __init__(self, body: nn.Module, shortcut: nn.Module, post: nn.Module) -> None:
        super().__init__()
        self.body, self.shortcut, self.post = body, shortcut, post

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.body(x) + self.shortcut(x))


class PadShortcut(nn.Module):
    """x subsampled by ``stride`` along each position axis, its channels zero-padded up to ``n_out``."""

    def __init__(self, n_in: int, n_out: int, stride: int, dims: int) -> None:
        super().__init__()
        self.extra, self.stride, self.dims = n_out - n_in, stride, dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[(..., *[slice(None, None, self.stride)] * self.dims)]
        return F.pad(x, [0, 0] * self.dims + [0, self.extra])  # pads (positions..., channels) from the last axis


class Concat(nn.Module):
    """The branches' outputs concatenated along the channel axis."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


def basic_block(kit: LayerKit, dims: int, n_in: int, n_out: int, stride: int, residual: bool) -> nn.Module:
    """conv3 -> norm -> act -> dropout -> conv3 -> norm, (+ shortcut), -> act; without ``residual`` the
    same layers as a plain nn.Sequential, so no skip is left anywhere."""
    body = sequential(*kit.block(dims, n_in, n_out, 3, stride), kit.dropout(dims),
                      kit.weight(dims, n_out, n_out, 3), kit.norm(n_out, dims))
    if not residual:
        return sequential(body, kit.act())
    same_shape = n_in == n_out and stride == 1
    return Residual(body, nn.Identity() if same_shape else PadShortcut(n_in, n_out, stride, dims), kit.act())


def inception_module(kit: LayerKit, dims: int, n_in: int, width: int) -> Concat:
    """GoogLeNet's module, scaled by ``width`` (b): 1x1 (2b) | 1x1 (3b) -> 3x3 (4b) | 1x1 (b/2) -> 5x5 (b)
    | 3x3 max-pool -> 1x1 (b), concatenated: 8b channels (inception 3a is b=32)."""
    reduce5 = max(1, width // 2)
    return Concat(
        sequential(*kit.block(dims, n_in, 2 * width, 1)),
        sequential(*kit.block(dims, n_in, 3 * width, 1), *kit.block(dims, 3 * width, 4 * width, 3)),
        sequential(*kit.block(dims, n_in, reduce5, 1), *kit.block(dims, reduce5, width, 5)),
        sequential(MAX_POOL[dims](3, stride=1, padding=1), *kit.block(dims, n_in, width, 1)),
    )


def stage_plan(units: list[int], width: int) -> list[tuple[int, int]]:
    """(channels, stride) of every unit of a CIFAR-style net: stage i has width·2^i channels, and each
    stage after the first starts with stride 2 (halving every position axis)."""
    return [(width * 2**i, 2 if i > 0 and j == 0 else 1) for i, n in enumerate(units) for j in range(n)]


def classifier_head(kit: LayerKit, dims: int, n_in: int, num_classes: int) -> list[nn.Module | None]:
    """Global average pooling -> flatten -> dropout -> linear classifier."""
    return [AVG_POOL[dims](1), nn.Flatten(), kit.dropout(0), nn.Linear(n_in, num_classes)]
