"""Expected calibration error: torchmetrics' binned ECE against a hand computation on fixed predictions, and in
the metrics a run writes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tricklab.calibration import ECE_BINS, expected_calibration_error
from tricklab.metrics import EvalMetrics


def ece_by_hand(probs: np.ndarray, labels: np.ndarray, bins: int) -> float:
    confidence, predicted = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            total += inside.mean() * abs((predicted[inside] == labels[inside]).mean() - confidence[inside].mean())
    return total


FIXED = np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.34, 0.33, 0.33], [0.1, 0.1, 0.8],
                  [0.05, 0.9, 0.05], [0.5, 0.45, 0.05], [0.25, 0.25, 0.5]])
LABELS = np.array([0, 1, 1, 2, 2, 1, 0, 0])


def test_ece_matches_a_hand_computation_on_fixed_predictions():
    expected = ece_by_hand(FIXED, LABELS, ECE_BINS)
    assert expected > 0.05  # not trivially calibrated
    assert expected_calibration_error(torch.tensor(FIXED).float(), torch.tensor(LABELS)) == pytest.approx(expected)
    # two bins, worked on paper: (0.5, 1] holds 5 of 8 (mean confidence 0.78, 4 right), (0, 0.5] holds 3 (mean
    # confidence 1.34/3, 1 right)
    assert ece_by_hand(FIXED, LABELS, 2) == pytest.approx(5 / 8 * abs(4 / 5 - 0.78) + 3 / 8 * abs(1 / 3 - 1.34 / 3))


def test_eval_metrics_accumulate_loss_accuracy_and_ece_over_batches():
    logits = torch.log(torch.tensor(FIXED).float())
    labels = torch.tensor(LABELS)
    metrics = EvalMetrics()
    metrics.add(logits[:5], labels[:5])
    metrics.add(logits[5:], labels[5:])
    result = metrics.compute("val")
    assert float(result["val/acc"]) == pytest.approx((FIXED.argmax(1) == LABELS).mean())
    assert float(result["val/loss"]) == pytest.approx(-np.log(FIXED[np.arange(8), LABELS]).mean(), rel=1e-5)
    assert float(result["val/ece"]) == pytest.approx(ece_by_hand(FIXED, LABELS, ECE_BINS), rel=1e-5)


def test_a_run_records_val_and_test_calibration(run_training):
    metrics = run_training(["trainer.max_epochs=1", "data.subset=500"])
    assert 0 < metrics["test"]["test/ece"] < 1 and 0 < metrics["final"]["val/ece"] < 1
