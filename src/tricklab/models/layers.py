"""Shared building blocks: every architecture makes its layers through a LayerKit, so the norm,
dropout and activation choices apply the same way everywhere (torchvision's ``norm_layer`` idea).

``dims`` is the number of spatial dimensions of a layer's output: 0 dense, 1 for Conv1d, 2 for Conv2d.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from tricklab.choices import ACTIVATIONS, check
from tricklab.errors import ConfigError
from tricklab.tricks.norm import SHIFTING_NORMS, make_norm

# Activation name -> its layer class.
ACTIVATION_LAYERS: dict[str, type[nn.Module]] = {name: getattr(nn, cls) for name, cls in ACTIVATIONS.items()}
CONV = {1: nn.Conv1d, 2: nn.Conv2d}
MAX_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d}
AVG_POOL = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d}
SPATIAL_DROPOUT = {1: nn.Dropout1d, 2: nn.Dropout2d}


@dataclass(frozen=True)
class LayerKit:
    """Makes weight, norm, activation and dropout layers from the run's choices."""

    norm_cfg: dict[str, Any] = field(default_factory=lambda: {"name": "none"})
    activation: str = "relu"
    dropout_cfg: dict[str, Any] = field(default_factory=lambda: {"name": "standard", "p": 0.0})

    def __post_init__(self) -> None:
        check(ACTIVATION_LAYERS, "architecture.activation", self.activation)

    def weight(self, dims: int, n_in: int, n_out: int, kernel_size: int = 3, stride: int = 1) -> nn.Module:
        """A Linear (dims=0) or 'same'-padded Conv layer; no bias when a norm with a shift β follows."""
        bias = self.norm_cfg["name"] not in SHIFTING_NORMS
        if dims == 0:
            return nn.Linear(n_in, n_out, bias=bias)
        return CONV[dims](n_in, n_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias)

    def norm(self, channels: int, dims: int) -> nn.Module | None:
        """The run's norm layer for ``channels`` features (None for norm=none and weight)."""
        return make_norm(self.norm_cfg, channels, dims)

    def act(self) -> nn.Module:
        """A new instance of the run's activation."""
        return ACTIVATION_LAYERS[self.activation]()

    def dropout(self, dims: int) -> nn.Module | None:
        """Dropout with the run's p (None when p=0); spatial dropout drops whole conv channels."""
        p = self.dropout_cfg["p"]
        if p == 0:
            return None
        if self.dropout_cfg["name"] == "spatial" and dims > 0:
            return SPATIAL_DROPOUT[dims](p)
        return nn.Dropout(p)

    def block(self, dims: int, n_in: int, n_out: int, kernel_size: int = 3, stride: int = 1) -> list[nn.Module]:
        """weight -> norm -> activation: the unit every architecture is made of."""
        return [self.weight(dims, n_in, n_out, kernel_size, stride), self.norm(n_out, dims), self.act()]


def sequential(*layers: nn.Module | None) -> nn.Sequential:
    """nn.Sequential of the given layers, leaving out the Nones (switched-off norm or dropout)."""
    return nn.Sequential(*(layer for layer in layers if layer is not None))


def spatial_dims(input_shape: tuple[int, ...]) -> int:
    """1 for (channels, length) signals, 2 for (channels, height, width) images."""
    if len(input_shape) not in (2, 3):
        raise ConfigError(f"input shape {input_shape} is neither (channels, length) nor (channels, height, width).")
    return len(input_shape) - 1
