"""A small GoogLeNet (Szegedy et al. 2015): a 3x3 stem conv (4b channels), then stages of Inception
modules (parallel 1x1, 3x3, 5x5 and pool branches, concatenated) with a stride-2 max-pool between
stages, global average pooling and a linear classifier. Stage i uses branch width b·2^i (b = ``width``).
Conv1d for signals, Conv2d for images.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from tricklab.models.blocks import classifier_head, inception_module
from tricklab.models.layers import MAX_POOL, LayerKit, sequential, spatial_dims


def build_inception(cfg: dict[str, Any], kit: LayerKit, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A small GoogLeNet: a 3x3 stem, stages of Inception modules (width doubling per stage) with a stride-2
    max-pool between stages, global average pool, classifier."""
    dims = spatial_dims(input_shape)
    n_in = 4 * cfg["width"]
    layers: list[nn.Module | None] = [*kit.block(dims, input_shape[0], n_in, 3)]
    for stage, modules in enumerate(cfg["blocks"]):
        if stage > 0:
            layers.append(MAX_POOL[dims](3, stride=2, padding=1))
        width = cfg["width"] * 2**stage
        for _ in range(modules):
            layers.append(inception_module(kit, dims, n_in, width))
            n_in = 8 * width
        layers.append(kit.dropout(dims))
    return sequential(*layers, *classifier_head(kit, dims, n_in, num_classes))
