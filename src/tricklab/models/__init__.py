"""Architectures. Each takes (cfg, LayerKit, input_shape, num_classes); ``build_model`` adds the init.

The builder is chosen by ``architecture.family``, which defaults to ``architecture.name``: only the
torchvision YAML sets a family, because there ``name`` picks one of torchvision's models (resnet18, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from tricklab.choices import pick
from tricklab.models.cnn import build_cnn
from tricklab.models.inception import build_inception
from tricklab.models.layers import LayerKit
from tricklab.models.mlp import build_mlp
from tricklab.models.plain_deep import build_plain_deep
from tricklab.models.resnet import build_resnet
from tricklab.models.torchvision_models import build_torchvision
from tricklab.tricks.init import apply_init
from tricklab.tricks.norm import apply_weight_norm

Builder = Callable[[dict[str, Any], LayerKit, tuple[int, ...], int], nn.Module]
ARCHITECTURES: dict[str, Builder] = {
    "mlp": build_mlp,
    "cnn": build_cnn,
    "resnet": build_resnet,
    "inception": build_inception,
    "plain_deep": build_plain_deep,
    "torchvision": build_torchvision,
}


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
    family = arch_cfg.get("family", arch_cfg["name"])
    builder = pick(ARCHITECTURES, "architecture", family)
    kit = LayerKit(norm_cfg=norm_cfg, activation=arch_cfg.get("activation", "relu"), dropout_cfg=dropout_cfg)
    model = apply_init(builder(arch_cfg, kit, tuple(input_shape), num_classes), init_cfg)
    return apply_weight_norm(model, norm_cfg)
