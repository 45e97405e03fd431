"""The classic small CNN: [conv -> norm -> act -> maxpool] per entry of ``channels`` -> dropout
-> flatten -> dense -> norm -> act -> dropout -> classifier (``hidden: null`` leaves out the dense layer, as the
Keras dropout notebook's conv32-pool-conv64-pool-flatten-dropout-dense(10) does). Conv1d for signals, Conv2d
for images."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from tricklab.errors import ConfigError
from tricklab.models.layers import MAX_POOL, LayerKit, sequential, spatial_dims


def build_cnn(cfg: dict[str, Any], kit: LayerKit, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The classic CNN; each of the len(channels) conv blocks halves every spatial size by max-pooling."""
    dims = spatial_dims(input_shape)
    positions = [size // 2 ** len(cfg["channels"]) for size in input_shape[1:]]
    if min(positions) < 1:
        raise ConfigError(
            f"architecture.channels={list(cfg['channels'])} has {len(cfg['channels'])} pooling stages, too many "
            f"for inputs of size {input_shape[1:]} (each halves it); use fewer channels entries."
        )
    layers: list[nn.Module | None] = []
    n_in = input_shape[0]
    for n_out in cfg["channels"]:
        layers += [*kit.block(dims, n_in, n_out, cfg["kernel_size"]), MAX_POOL[dims](2)]
        n_in = n_out
    layers += [kit.dropout(dims), nn.Flatten()]
    features = n_in * math.prod(positions)
    if cfg.get("hidden"):
        layers += [*kit.block(0, features, cfg["hidden"]), kit.dropout(0)]
        features = cfg["hidden"]
    layers.append(nn.Linear(features, num_classes))
    return sequential(*layers)
