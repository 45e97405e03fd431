"""Deep plain nets for vanishing/exploding-gradient studies: ``depth`` weight layers, no skips.

- kind=mlp: flatten -> (depth-1) x [Linear(width) -> norm -> act -> dropout] -> Linear (the MLP builder).
- kind=cnn: 3x3 stem conv -> (depth-2) x [conv3 -> norm -> act -> dropout] in three stages of width·2^i
  channels (stride 2 at the start of stages 2 and 3, like the ResNet) -> global average pool -> Linear.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from tricklab.models.blocks import classifier_head, stage_plan
from tricklab.models.layers import LayerKit, sequential, spatial_dims
from tricklab.models.mlp import build_mlp


def build_plain_deep(cfg: dict[str, Any], kit: LayerKit, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """``depth`` weight layers without skips: an MLP, or a CNN laid out like the ResNet (3 stages)."""
    if cfg["kind"] == "mlp":
        return build_mlp({"depth": cfg["depth"] - 1, "width": cfg["width"]}, kit, input_shape, num_classes)
    dims = spatial_dims(input_shape)
    convs = cfg["depth"] - 2
    layers: list[nn.Module | None] = [*kit.block(dims, input_shape[0], cfg["width"], 3)]
    n_in = cfg["width"]
    for n_out, stride in stage_plan([(convs + stage) // 3 for stage in range(3)], cfg["width"]):
        layers += [*kit.block(dims, n_in, n_out, 3, stride), kit.dropout(dims)]
        n_in = n_out
    return sequential(*layers, *classifier_head(kit, dims, n_in, num_classes))
