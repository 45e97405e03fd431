"""A run's two checkpoints: the best epoch by a monitored metric, and the last state, written on a clock.

Writing a checkpoint pickles model, optimizer and loop state, which can take longer than a small net's epoch.
So the best epoch is still chosen every epoch, but files are written at most every
``every_seconds`` of training and when training ends: a best epoch chosen in between is kept in memory (a copy
of the checkpoint Lightning would have written then) until the next write. Each write puts best first, then
last: on disk they are always a consistent pair, and a run killed between writes loses at most
``every_seconds`` of training. ``every_seconds=0`` writes at every epoch's end.

A run stopped by Ctrl-C or SIGTERM loses nothing of its finished epochs: the last epoch end's state is kept in
memory until the next write and written as last.ckpt then (the epoch it was stopped in trains again on resume).
Not the state at the signal, as Lightning's ``OnExceptionCheckpoint`` writes it: a mid-epoch checkpoint resumes
in an epoch whose start hooks do not run again and whose batch order is not resumable (Lightning warns so),
while every record here (history.csv, the epoch metrics, the schedules) counts whole epochs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint

from tricklab.internals import checkpoint_contents
from tricklab.results import replaced_whole

LAST = "last.ckpt"


class RunCheckpoints(Checkpoint):
    """``<dirpath>/best-epochNNN.ckpt`` (1-based epoch, like history.csv) and ``<dirpath>/last.ckpt``.

    A ``Checkpoint`` subclass, so Lightning calls ``on_train_epoch_end`` after the module's (which logs the
    training metrics) and Lightning's ``test(ckpt_path="best")`` finds ``best_model_path``.
    """

    def __init__(self, dirpath: Path, monitor: str, mode: str, every_seconds: float) -> None:
        self.dirpath, self.monitor, self.mode, self.every_seconds = Path(dirpath), monitor, mode, every_seconds
        self.best_model_score: float | None = None
        self.best_model_path = ""  # the best checkpoint's file (written, or due at the next write)
        self.best_epoch: int | None = None  # its epoch, 1-based like history.csv
        self.last_model_path = str(self.dirpath / LAST)
        self._pending_best: dict[str, Any] | None = None  # the best checkpoint's content, until written
        self._pending_last: dict[str, Any] | None = None  # the last epoch end's state, until written
        self._written_best = ""
        self._written_at = time.monotonic()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._written_at = time.monotonic()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        due = trainer.strategy.broadcast(time.monotonic() - self._written_at >= self.every_seconds)  # rank 0's
        current = self.monitored(trainer)
        improved = current is not None and self.improves(float(current))
        if improved:
            self.best_model_score, self.best_epoch = float(current), trainer.current_epoch + 1
            self.best_model_path = str(self.dirpath / f"best-epoch{self.best_epoch:03d}.ckpt")
        # This epoch end (its best already in our state), kept for a new best or a stop before the next write.
        state = None if due else self.snapshot(trainer)
        if improved:
            self._pending_best = state
            if due:
                self.save(trainer, self.best_model_path)
                self._forget_written_best(trainer)
        if due:
            self._write(trainer)
        self._pending_last = state

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The final state as last.ckpt (and a best not yet written)."""
        self._write(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """Ctrl-C or SIGTERM (tricklab.signals makes both a KeyboardInterrupt): the epochs finished since the last
        write are written now (last.ckpt = the last epoch end), so the resumed run continues after them. A run
        that failed is not written: it starts over."""
        if isinstance(exception, KeyboardInterrupt) and self._pending_last is not None:
            self._write(trainer, self._pending_last)

    def improves(self, value: float) -> bool:
        """Whether ``value`` of the monitored metric beats the best so far (NaN never does)."""
        if value != value:  # NaN never improves
            return False
        best = self.best_model_score
        return best is None or (value < best if self.mode == "min" else value > best)

    def _write(self, trainer: pl.Trainer, last: dict[str, Any] | None = None) -> None:
        """A best checkpoint kept in memory, then ``last`` (by default the current state) as last.ckpt."""
        if self._pending_best is not None:
            best = self._pending_best
            written(trainer, self.best_model_path, lambda tmp: trainer.strategy.save_checkpoint(best, tmp))
            self._pending_best = None
            self._forget_written_best(trainer)
        if last is None:
            self.save(trainer, self.last_model_path)
        else:
            written(trainer, self.last_model_path, lambda tmp: trainer.strategy.save_checkpoint(last, tmp))
        self._pending_last = None
        self._written_at = time.monotonic()

    def monitored(self, trainer: pl.Trainer) -> Any:
        """This epoch's value of the monitored metric (None when the epoch did not measure it)."""
        return trainer.callback_metrics.get(self.monitor)

    def save(self, trainer: pl.Trainer, path: str) -> None:
        """Write the checkpoint of the current state to ``path``."""
        written(trainer, path, lambda tmp: trainer.save_checkpoint(tmp, weights_only=False))

    def snapshot(self, trainer: pl.Trainer) -> dict[str, Any]:
        """The checkpoint ``save`` would write now, with copies of its tensors (the live state)."""
        return copy_tensors(checkpoint_contents(trainer))

    def _forget_written_best(self, trainer: pl.Trainer) -> None:
        """The best checkpoint is now ``best_model_path``: remove the one written before it."""
        if self._written_best and self._written_best != self.best_model_path:
            trainer.strategy.remove_checkpoint(self._written_best)
        self._written_best = self.best_model_path

    def state_dict(self) -> dict[str, Any]:
        """The best score, epoch and file, so that a resumed run keeps comparing against them."""
        return {"monitor": self.monitor, "best_model_score": self.best_model_score, "best_epoch": self.best_epoch,
                "best_model_path": self.best_model_path}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("monitor") == self.monitor:
            self.best_model_score, self.best_epoch = state_dict["best_model_score"], state_dict.get("best_epoch")
            self.best_model_path = self._written_best = state_dict["best_model_path"]


def copy_tensors(value: Any) -> Any:
    """``value`` with every tensor in its dicts, lists and tuples cloned (``copy.deepcopy`` would also copy
    everything else, at ten times the cost)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return type(value)((k, copy_tensors(v)) for k, v in value.items())
    if type(value) in (list, tuple):
        return type(value)(copy_tensors(v) for v in value)
    return value


def written(trainer: pl.Trainer, path: str, write: Callable[[str], None]) -> None:
    """``write(tmp)`` a checkpoint to ``path`` whole (``replaced_whole``; renamed by rank 0, the one that writes):
    a full disk or a kill mid-write leaves the checkpoint there before (last.ckpt of the epoch before) whole."""
    with replaced_whole(path, rename=trainer.is_global_zero) as tmp:
        write(str(tmp))
