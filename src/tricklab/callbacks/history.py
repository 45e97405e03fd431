"""``history.csv``: one row per epoch (train/val loss and accuracy, learning rate, gradient norm)."""

from __future__ import annotations

import contextlib
import csv
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Checkpoint

from tricklab.results import replaced_whole

# time_s: seconds since this attempt's training started; total_time_s: since the run's, attempts added up.
COLUMNS = ("epoch", "step", "train/loss", "train/acc", "val/loss", "val/acc", "val/ece", "lr", "grad_norm", "time_s",
           "total_time_s")


class HistoryWriter(Checkpoint):
    """Appends the epoch's metrics to ``history.csv`` and keeps them for the run's best/final summary.

    A ``Checkpoint`` subclass only so that Lightning calls it after ``LightningModule.on_train_epoch_end``,
    where the module logs the epoch's training metrics.
    """

    def __init__(self, path: Path, extra_columns: tuple[str, ...] = ()) -> None:
        self.path = Path(path)
        self.columns = COLUMNS + tuple(extra_columns)
        self.rows: list[dict[str, Any]] = []
        self.started = time.perf_counter()
        self.carried_s = 0.0  # training time of the epochs an earlier attempt did (a resumed run)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = time.perf_counter()
        if trainer.current_epoch > 0 and self.path.is_file():
            # Resumed from last.ckpt, which was saved before this callback recorded its epoch: the epochs done
            # are in history.csv.
            self.rows = [row for row in self._read() if row["epoch"] <= trainer.current_epoch]
            if self.rows:
                self.carried_s = self.rows[-1].get("total_time_s", self.rows[-1].get("time_s", 0.0))
        if trainer.current_epoch > 0 and trainer.is_global_zero:  # only a resumed run starts past epoch 0
            print(f"tricklab: resuming from epoch {trainer.current_epoch + 1} of {trainer.max_epochs} "
                  f"({trainer.current_epoch} done; {trainer.ckpt_path})", flush=True)
        if trainer.is_global_zero:
            self._write()  # the header, and the rows of the epochs a resumed run has done

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        self.append(trainer.current_epoch + 1, trainer.global_step, trainer.callback_metrics)

    def append(self, epoch: int, step: int, metrics: Mapping[str, Any]) -> None:
        """The row of ``epoch`` (1-based), ended at optimizer step ``step``, from ``metrics`` (any of the columns)."""
        row = {"epoch": epoch, "step": step, "time_s": round(time.perf_counter() - self.started, 3)}
        row["total_time_s"] = round(self.carried_s + row["time_s"], 3)
        row.update({key: float(metrics[key]) for key in self.columns if key in metrics})
        self.rows.append(row)
        size = self.path.stat().st_size if self.path.exists() else 0
        try:
            with self.path.open("a", newline="") as f:  # one row a write: rewriting the file costs O(epochs)
                csv.DictWriter(f, fieldnames=self.columns).writerow(row)
        except OSError:  # a full disk mid-row: cut the half row off, so the epochs written before stay readable
            self.rows.pop()  # and the record (metrics.json's epochs, best, final) counts only the rows on disk
            with contextlib.suppress(OSError), self.path.open("r+b") as f:
                f.truncate(size)
            raise

    def _write(self) -> None:
        with replaced_whole(self.path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(self.rows)

    def _read(self) -> list[dict[str, Any]]:
        with self.path.open(newline="") as f:
            return [{k: int(v) if k in ("epoch", "step") else float(v) for k, v in row.items() if v != ""}
                    for row in csv.DictReader(f)]

    def best(self, key: str, mode: str) -> tuple[float, int] | None:
        """(best value of ``key``, its epoch) over the finite values recorded, or None."""
        values = [(row[key], row["epoch"]) for row in self.rows if key in row and row[key] == row[key]]
        if not values:
            return None
        return (min if mode == "min" else max)(values, key=lambda v: v[0])
