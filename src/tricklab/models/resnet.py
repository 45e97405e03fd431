"""CIFAR-style ResNet (He et al. 2016, sec. 4.2): a 3x3 stem conv, three stages of n basic blocks with
16·m, 32·m, 64·m channels (m the width multiplier), global average pooling and a linear classifier:
depth = 6n + 2 weight layers (20, 32, 56, ...). Conv1d for signals, Conv2d for images.

``residual=false`` gives the same layers and parameters with every skip removed (the paper's plain net).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from tricklab.models.blocks import basic_block, classifier_head, stage_plan
from tricklab.models.layers import LayerKit, sequential, spatial_dims


def build_resnet(cfg: dict[str, Any], kit: LayerKit, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """CIFAR ResNet of depth 6n+2: 3x3 stem, 3 stages of n basic blocks (16m, 32m, 64m channels), pool, linear."""
    dims = spatial_dims(input_shape)
    blocks_per_stage = (cfg["depth"] - 2) // 6
    width = max(1, round(16 * cfg["width_multiplier"]))
    layers: list[nn.Module | None] = [*kit.block(dims, input_shape[0], width, 3)]
    n_in = width
    for n_out, stride in stage_plan([blocks_per_stage] * 3, width):
        layers.append(basic_block(kit, dims, n_in, n_out, stride, cfg["residual"]))
        n_in = n_out
    return sequential(*layers, *classifier_head(kit, dims, n_in, num_classes))
