"""What each job of a pack keeps of its own while the pack trains: the files and decisions of an unfused job.

Per member, the callbacks it would have alone (``tricklab.callbacks.build_callbacks``), driven by the pack:
``history.csv``, its logger (its own W&B run, CSV or TensorBoard folder), its best epoch and checkpoints
(``MemberCheckpoints``: ``RunCheckpoints`` writing the member's cut of the pack's checkpoint), its divergence
guard (stopping the member, not the pack) and early stopping (Lightning's ``EarlyStopping`` rule). A member that
diverges or stops early is frozen in the pack (``PackModule.freeze``) and its checkpoints are written then; the
pack stops when every member has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint, EarlyStopping
from pytorch_lightning.loggers import Logger

from tricklab.callbacks.checkpoints import RunCheckpoints, copy_tensors
from tricklab.callbacks.divergence import DivergenceGuard
from tricklab.callbacks.history import HistoryWriter
from tricklab.callbacks.predictions import TestPredictions, save_predictions
from tricklab.fuse.checkpoints import BEST_STATE, GUARD_STATE, PACK_MEMBER, member_checkpoint
from tricklab.fuse.module import PackModule
from tricklab.internals import checkpoint_contents, early_stopping_says_stop
from tricklab.metrics import logged_epoch
from tricklab.stages import CallSteps, StepCallback


class MemberCheckpoints(RunCheckpoints):
    """The ``RunCheckpoints`` the member would have alone (``like``), reading the member's monitored metric and
    writing its own cut of the pack's checkpoint."""

    def __init__(self, member: Member, like: RunCheckpoints) -> None:
        super().__init__(like.dirpath, like.monitor, like.mode, like.every_seconds)
        self.member = member

    def monitored(self, trainer: pl.Trainer) -> Any:
        return self.member.metrics.get(self.monitor)

    def save(self, trainer: pl.Trainer, path: str) -> None:
        trainer.strategy.save_checkpoint(self._contents(trainer), path)

    def snapshot(self, trainer: pl.Trainer) -> dict[str, Any]:
        return copy_tensors(self._contents(trainer))

    def _contents(self, trainer: pl.Trainer) -> dict[str, Any]:
        return member_checkpoint(checkpoint_contents(trainer), trainer.lightning_module.model, self.member.k,
                                 self.member.callback_states())


@dataclass
class Member:
    """One job of the pack, member ``k``: its record (metrics.json) and what records and guards it."""

    k: int
    run_dir: Path
    record: dict[str, Any]
    history: HistoryWriter
    logger: Logger | None = None
    checkpoints: MemberCheckpoints | None = None
    guard: DivergenceGuard | None = None  # its stop_run stops the member
    early_stopping: EarlyStopping | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # the epoch's, as numbers
    stopped: str | None = None  # why it stopped before the pack did: "diverged" or "early stopping"
    steps: int = 0  # optimizer steps it took
    best_state: dict[str, torch.Tensor] | None = None  # its weights at its best epoch (to test with)

    def stop(self, trainer: pl.Trainer, why: str = "diverged") -> None:
        """Freeze the member in the pack from now on."""
        if self.stopped is None:
            self.stopped = why
            self.steps = trainer.global_step
            trainer.lightning_module.freeze(self.k)

    def callback_states(self) -> dict[str, dict[str, Any]]:
        """The states an unfused run's callbacks keep in its checkpoint, under their state keys, and whether the
        member had stopped (a resumed pack keeps it frozen)."""
        states: dict[str, dict[str, Any]] = {PACK_MEMBER: {"stopped": self.stopped, "steps": self.steps}}
        if self.guard is not None:
            states[PACK_MEMBER].update(diverged_at_step=self.guard.diverged_at_step, reason=self.guard.reason)
        if self.checkpoints is not None:
            states[BEST_STATE] = self.checkpoints.state_dict()
        if self.guard is not None:
            states[GUARD_STATE] = self.guard.state_dict()
        if self.early_stopping is not None:
            states[self.early_stopping.state_key] = self.early_stopping.state_dict()
        return states

    def load_callback_states(self, states: dict[str, dict[str, Any]]) -> None:
        """Restore what ``callback_states`` saved (a resumed pack), and the weights of the member's best epoch."""
        for key, callback in ((BEST_STATE, self.checkpoints), (GUARD_STATE, self.guard)):
            if callback is not None and key in states:
                callback.load_state_dict(states[key])
        if self.early_stopping is not None and self.early_stopping.state_key in states:
            self.early_stopping.load_state_dict(states[self.early_stopping.state_key])
        member = states.get(PACK_MEMBER, {})
        self.stopped, self.steps = member.get("stopped"), member.get("steps", 0)
        if self.guard is not None and member.get("diverged_at_step") is not None:
            self.guard.diverged_at_step, self.guard.reason = member["diverged_at_step"], member["reason"]
        best = Path(self.checkpoints.best_model_path) if self.checkpoints is not None else None
        if best is not None and best.is_file():
            weights = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
            self.best_state = {key.removeprefix("model."): value for key, value in weights.items()}


class PackGuards(StepCallback):
    """Every member's divergence guard, after each training call: one host sync for the whole pack."""

    def __init__(self, members: list[Member]) -> None:
        self.members = [m for m in members if m.guard is not None]

    def after_steps(self, trainer: pl.Trainer, steps: CallSteps) -> None:
        losses = steps.losses.cpu()  # (S, K): one sync
        norms = steps.grad_norms.cpu() if steps.grad_norms is not None else None
        for m in self.members:
            if m.stopped is None:
                m.guard.after_steps(trainer, CallSteps(steps.first_step, losses[:, m.k],
                                                       norms[:, m.k] if norms is not None else None))


class PackRecorder(Checkpoint):
    """At each epoch's end, every member still training gets its history row, its logger's metrics, its best
    epoch and checkpoints (on the pack's clock), and its early-stopping decision; a member that stopped during the
    epoch gets its row and its checkpoints once. A ``Checkpoint`` so that Lightning calls it after the module's
    ``on_train_epoch_end``, where the epoch's metrics are computed."""

    def __init__(self, members: list[Member]) -> None:
        self.members = members
        self.recorded: set[int] = set()  # members whose last row and checkpoints are written

    def on_train_start(self, trainer: pl.Trainer, pl_module: PackModule) -> None:
        for m in self.members:
            m.history.on_train_start(trainer, pl_module)
            if m.checkpoints is not None:
                m.checkpoints.on_train_start(trainer, pl_module)
            if m.stopped is not None:  # it had stopped before the pack was cut short: it stays as it stopped
                pl_module.freeze(m.k)
                self.recorded.add(m.k)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: PackModule) -> None:
        values = {key: tensor.tolist() for key, tensor in pl_module.epoch_metrics.items()}
        for m in self.members:
            if m.k in self.recorded:
                continue
            m.metrics = {key: column[m.k] for key, column in values.items()}
            diverged = m.stopped is not None  # during this epoch: its row, then its last checkpoint, as alone
            if not diverged:
                m.steps = trainer.global_step
            m.history.append(trainer.current_epoch + 1, m.steps, m.metrics)
            if m.logger is not None:
                m.logger.log_metrics({**m.metrics, "epoch": logged_epoch(trainer)}, step=m.steps)
                m.logger.save()
            if not diverged:
                self._judge(trainer, pl_module, m)
                if m.checkpoints is not None:
                    m.checkpoints.on_train_epoch_end(trainer, pl_module)
            if m.stopped is not None:
                self._close(trainer, pl_module, m)
        if all(m.stopped is not None for m in self.members):
            trainer.should_stop = True

    def _judge(self, trainer: pl.Trainer, pl_module: PackModule, m: Member) -> None:
        """Keep the member's weights when its monitored metric improved; stop it when early stopping says so."""
        if m.checkpoints is not None and m.checkpoints.improves(float(m.metrics.get(m.checkpoints.monitor, "nan"))):
            m.best_state = pl_module.model.member_state_dict(m.k)
        rule = m.early_stopping
        if rule is not None and rule.monitor in m.metrics and early_stopping_says_stop(rule, m.metrics[rule.monitor]):
            m.stop(trainer, "early stopping")

    def _close(self, trainer: pl.Trainer, pl_module: PackModule, m: Member) -> None:
        """A stopped member's final checkpoints; nothing more is recorded for it."""
        if m.checkpoints is not None:
            m.checkpoints.on_train_end(trainer, pl_module)
        self.recorded.add(m.k)

    def on_train_end(self, trainer: pl.Trainer, pl_module: PackModule) -> None:
        for m in self.members:
            if m.k not in self.recorded:
                self._close(trainer, pl_module, m)


class PackPredictions(TestPredictions):
    """Each member's ``test_predictions.npz``: softmax of its test logits, with the labels."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__(paths[0])
        self.paths = paths

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.probs:
            probs, labels = torch.cat(self.probs, dim=1), torch.cat(self.labels)
            for k, path in enumerate(self.paths):
                save_predictions(path, probs[k], labels)
