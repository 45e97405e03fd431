"""Architectures. Each takes (cfg, LayerKit, input_shape, num_classes); ``build_model`` adds the init."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from tricklab.errors import ConfigError
from tricklab.models.cnn import build_cnn
from tricklab.models.layers import LayerKit
from tricklab.models.mlp import build_mlp
from tricklab.tricks.init import apply_init
from tricklab.tricks.norm import apply_weight_norm

Builder = Callable[[dict[str, Any], LayerKit, tuple[int, ...], int], nn.Module]
ARCHITECTURES: dict[str, Builder] = {"mlp": build_mlp, "cnn": build_cnn}


def build_model(
    arch_cfg: dict[str, Any],
    norm_cfg: dict[str, Any],
    dropout_cfg: dict[str, Any],
    init_cfg: dict[str, Any],
    input_shape: tuple[int, ...],
    num_classes: int,
) -> nn.Module:
    """The architecture with the run's norm, dropout and activation, initialised by ``init_cfg``.

    Weight normalisation is applied last, so that w = g·v/‖v‖ starts equal to the initialised w.
    """
    name = arch_cfg["name"]
    if name not in ARCHITECTURES:
        raise ConfigError(f"architecture={name} is unknown; known: {', '.join(ARCHITECTURES)}.")
    kit = LayerKit(norm_cfg=norm_cfg, activation=arch_cfg.get("activation", "relu"), dropout_cfg=dropout_cfg)
    model = apply_init(ARCHITECTURES[name](arch_cfg, kit, tuple(input_shape), num_classes), init_cfg)
    return apply_weight_norm(model) if norm_cfg["name"] == "weight" else model
