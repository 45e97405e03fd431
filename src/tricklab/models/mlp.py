"""Multi-layer perceptron: flatten -> [Linear -> norm -> activation -> dropout] x depth -> Linear."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from tricklab.models.layers import LayerKit, sequential


def build_mlp(cfg: dict[str, Any], kit: LayerKit, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """``depth`` hidden layers of ``width`` units; depth 0 is multinomial logistic regression."""
    layers: list[nn.Module | None] = [nn.Flatten()]
    n_in = math.prod(input_shape)
    for _ in range(cfg["depth"]):
        layers += [*kit.block(0, n_in, cfg["width"]), kit.dropout(0)]
        n_in = cfg["width"]
    layers.append(nn.Linear(n_in, num_classes))
    return sequential(*layers)
