"""The LightningModule of a fused pack: ``ClassifierModule``'s own optimizer step over a ``Pack``, per member.

Nothing of the step is rewritten: ``optimizer_step_on`` runs as for one model, and each stage reduces per member
because the tensors carry a leading member dimension — the loss is one mean cross-entropy per member (their sum
is differentiated, so member k's gradient is ∂L_k/∂θ_k alone), ‖g‖₂ and clipping take each member's own norm
(``grad_norm(members=True)``), the penalty sums each member's weights, and elementwise optimizers update each
member as its own optimizer would. A member that stopped (diverged, or early stopping) is frozen: its state is
put back after every update while the others train on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tricklab.fuse.stack import Pack
from tricklab.metrics import EvalMetrics
from tricklab.module import ClassifierModule
from tricklab.tricks.step import StepTricks


class MemberEval:
    """An evaluation epoch's ``EvalMetrics`` for each member; every member sees the same batches."""

    def __init__(self, members: int) -> None:
        self.each = [EvalMetrics() for _ in range(members)]

    def add(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """logits (K, B, C) of the batch, targets (B,)."""
        for k, metrics in enumerate(self.each):
            metrics.add(logits[k], targets)

    def compute(self, prefix: str) -> dict[str, torch.Tensor]:
        """Each metric as a (K,) tensor, one value per member."""
        per_member = [metrics.compute(prefix) for metrics in self.each]
        return {key: torch.stack([torch.as_tensor(m[key]).float() for m in per_member]) for key in per_member[0]}


class PackModule(ClassifierModule):
    """``ClassifierModule`` over a ``Pack`` of K members; an epoch's metrics are kept per member in
    ``epoch_metrics`` (each a (K,) tensor) for the pack's recorder (``tricklab.fuse.members``), not logged here."""

    members = True

    def __init__(self, model: Pack, tricks: StepTricks) -> None:
        # ClassifierModule's argument, built with members=True; a member's checkpoint holds an unfused run's hparams.
        super().__init__(model, tricks)
        self.epoch_metrics: dict[str, torch.Tensor] = {}
        self.frozen: dict[int, dict[str, torch.Tensor]] = {}  # member → the state it stopped with

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each member's mean cross-entropy on its own minibatch: logits (K, B, C), y (K, B) → (K,)."""
        k, b = y.shape
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(k, b).mean(1)

    def compute_gradients(self, objective: torch.Tensor) -> None:
        super().compute_gradients(objective.sum())  # Σ_k L_k: no member's loss reaches another's weights

    def apply_update(self) -> None:
        super().apply_update()
        for k, state in self.frozen.items():
            self.model.load_member(k, state)  # a stopped member keeps the weights (and statistics) it stopped at

    def freeze(self, k: int) -> None:
        """Member k stops training: from the next update on, its state stays as it is now."""
        self.frozen.setdefault(k, self.model.member_state_dict(k))

    def evaluate(self, x: torch.Tensor, model: Pack | None = None) -> torch.Tensor:
        return (self.model if model is None else model).shared(x)

    def eval_metrics(self) -> MemberEval:
        return MemberEval(self.model.members)

    def record(self, metrics: dict[str, torch.Tensor | float], prog_bar: bool = False) -> None:
        k = self.model.members
        self.epoch_metrics.update({key: torch.as_tensor(value).float().expand(k) for key, value in metrics.items()})

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.epoch_metrics = {}
