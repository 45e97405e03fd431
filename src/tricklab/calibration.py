"""Expected calibration error: ECE = Σ_b (n_b/n)·|acc_b − conf_b| over B equal-width bins of the top-class
confidence (Naeini et al. 2015; Guo et al. 2017 use B = 15), computed by torchmetrics."""

from __future__ import annotations

import torch

ECE_BINS = 15


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """ECE of predicted class probabilities (n, classes) against integer labels (n,)."""
    from torchmetrics.functional.classification import multiclass_calibration_error

    return float(multiclass_calibration_error(probs, labels, num_classes=probs.shape[1], n_bins=ECE_BINS,
                                              norm="l1"))
