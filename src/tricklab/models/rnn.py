"""A small recurrent net reading a signal as a sequence: h_t = φ(W_x·x_t + W_h·h_{t−1} + b), t = 1..T, then a
classifier on h_T (dropout before it). MNIST-1D (1 channel × 40 positions) is read as 40 steps of 1 feature.

This is the exploding-gradient setting of the clipping literature (Pascanu, Mikolov & Bengio 2013): ∂h_T/∂h_1 is
a product of T Jacobians diag(φ′)·W_h, so with ‖W_h‖ > 1 (``recurrent_gain``) and φ = ReLU it grows like gain^T.
W_h starts as ``recurrent_gain``·Q with Q orthogonal; W_x and the classifier take the run's init.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tricklab.errors import ConfigError
from tricklab.models.layers import LayerKit


class RecurrentClassifier(nn.Module):
    """``nn.RNN`` over the positions of a (batch, channels, length) input, a classifier on the last state."""

    def __init__(self, channels: int, hidden: int, layers: int, nonlinearity: str, recurrent_gain: float,
                 dropout: nn.Module | None, num_classes: int) -> None:
        super().__init__()
        self.rnn = nn.RNN(channels, hidden, num_layers=layers, nonlinearity=nonlinearity, batch_first=True)
        for name, weight in self.rnn.named_parameters():
            if name.startswith("weight_hh"):
                nn.init.orthogonal_(weight, gain=recurrent_gain)
        self.dropout = dropout if dropout is not None else nn.Identity()
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, _ = self.rnn(x.transpose(1, 2))  # (batch, length, channels) -> (batch, length, hidden)
        return self.classifier(self.dropout(states[:, -1]))


def build_rnn(cfg: dict[str, Any], kit: LayerKit, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The recurrent classifier for 1-D signals; norm layers do not apply to its recurrence (norm=none only)."""
    if len(input_shape) != 2:
        raise ConfigError(f"architecture=rnn reads (channels, length) signals such as MNIST-1D; this data has "
                          f"input shape {tuple(input_shape)}.")
    if kit.norm_cfg["name"] != "none":
        raise ConfigError(f"architecture=rnn takes norm=none (no norm layer fits inside nn.RNN's recurrence); "
                          f"got norm={kit.norm_cfg['name']}.")
    return RecurrentClassifier(input_shape[0], cfg["hidden"], cfg["layers"], cfg["nonlinearity"],
                               cfg["recurrent_gain"], kit.dropout(0), num_classes)
