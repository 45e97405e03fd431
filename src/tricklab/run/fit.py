"""Fit, test, record: the sequence of every training attempt, a single run's (``run``) and a fused pack's
(tricklab.fuse.run). However the attempt ends (tested, interrupted, failed), each run's record gets its status and
closing numbers, is written to its metrics.json, and its logger is closed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from tricklab.chatter import quiet_libraries
from tricklab.errors import disk_fault
from tricklab.results import METRICS_FILE, write_json_atomic
from tricklab.run.context import RunContext
from tricklab.run.prepare import PreparedRun, prepare
from tricklab.run.record import finish_record, flat_summary, open_record, record_outcome, record_tested_weights


@dataclass
class Recorded:
    """One run's share of a training attempt: its folder and record (metrics.json), the history its closing
    numbers come from, the optimizer steps it took (asked as the attempt ends), and how its logger is closed once
    the record is written."""

    run_dir: Path
    record: dict[str, Any]
    history: Any
    steps: Callable[[], int]
    close_logger: Callable[[dict[str, Any]], None]


def fit_test_record(trainer: Any, module: Any, datamodule: Any, resume: str | None, runs: list[Recorded],
                    started: float, test: Callable[[], None], on_error: Callable[[Exception], bool]) -> None:
    """Fit (from the checkpoint ``resume``, if any), then ``test``; each of ``runs`` is recorded however that ends.

    Ctrl-C or SIGTERM marks every run interrupted; any other error goes to ``on_error``, which records what it
    means and returns True when the attempt ends with it (a divergence), False to raise it on. ``started`` is
    ``time.perf_counter()`` as the attempt began (its wall time)."""
    raising: BaseException | None = None  # the error the attempt is ending with, if any
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
        test()
    except (KeyboardInterrupt, SystemExit) as err:
        raising = err
        for run in runs:
            run.record["status"] = "interrupted"
        raise
    except Exception as err:
        raising = err
        if not on_error(err):
            raise
    finally:
        for run in runs:
            _close(run, trainer.is_global_zero, started, raising)


def _close(run: Recorded, to_disk: bool, started: float, raising: BaseException | None) -> None:
    """The run's closing numbers in its record, the record to its metrics.json (``to_disk``: rank 0 only), its
    logger closed."""
    finish_record(run.record, run.history, run.steps(), started)
    if to_disk:
        try:
            write_json_atomic(run.run_dir / METRICS_FILE, run.record)
        except OSError as err:  # a full disk: the metrics.json written before stays whole
            if raising is None or not disk_fault(err):  # nothing else to report: this is what happened
                raise
    run.close_logger(run.record)


def failed(runs: list[Recorded], err: Exception) -> bool:
    """``on_error`` that fails every run with ``err`` (recorded), raised on."""
    for run in runs:
        run.record.update(status="failed", error=f"{type(err).__name__}: {err}")
    return False


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    """Train and test one configuration; returns (and writes) the run's metrics.json content. The libraries'
    chatter is left out unless ``verbose`` (tricklab.chatter)."""
    with quiet_libraries(cfg.verbose):
        return _run(cfg, ctx)


def _run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    prepared = prepare(cfg, ctx)
    trainer, record = prepared.trainer, prepared.record
    if trainer.is_global_zero:  # under data parallelism every process runs this function; only rank 0 records
        open_record(ctx.run_dir, record, trainer)
    recorded = Recorded(ctx.run_dir, record, prepared.callbacks.history, lambda: trainer.global_step,
                        functools.partial(_close_wandb, prepared.logger))
    fit_test_record(trainer, prepared.module, prepared.datamodule, record["resumed_from"], [recorded],
                    prepared.started, functools.partial(_test, cfg, ctx, prepared),
                    functools.partial(_ended_by, prepared, recorded))
    return record


def _test(cfg: DictConfig, ctx: RunContext, prepared: PreparedRun) -> None:
    """After the fit: test the run (on its best weights under early stopping, else its final ones), unless the
    search pruned it or it diverged."""
    record, callbacks, trainer = prepared.record, prepared.callbacks, prepared.trainer
    if ctx.trial is not None and ctx.trial.pruned_at is not None:  # stopped by the search: not tested
        record.update(status="pruned", pruned_at_epoch=ctx.trial.pruned_at)
        return
    diverged = record_outcome(record, callbacks.guard)
    best = callbacks.checkpoint if cfg.callbacks.early_stopping.enabled and not diverged else None
    best = best if best is not None and best.best_model_path else None
    trainer.test(prepared.module, datamodule=prepared.datamodule, ckpt_path="best" if best else None, verbose=False)
    record["test"] = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test")}
    record_tested_weights(record, best, callbacks.history)


def _ended_by(prepared: PreparedRun, recorded: Recorded, err: Exception) -> bool:
    """What an error means for a single run (``on_error``): a disk fault cuts it short; a NaN met first by a
    per-step consumer (a logger, a histogram) is a divergence, which ends it (True); anything else fails it."""
    record, guard = prepared.record, prepared.callbacks.guard
    if disk_fault(err):  # the machine's fault, not the run's: cut short, so the same command continues it
        record.update(status="interrupted", error=f"{type(err).__name__}: {err}")
        return False
    if guard is not None and guard.check_weights(prepared.trainer, prepared.module.model):
        record.update(status="diverged", diverged_at_step=guard.diverged_at_step, diverged_reason=guard.reason,
                      error=f"{type(err).__name__}: {err}")
        return True
    return failed([recorded], err)


def _close_wandb(logger: Any, record: dict[str, Any]) -> None:
    """The run's W&B run gets the record's summary and is closed (Lightning closes the Trainer's other loggers)."""
    from pytorch_lightning.loggers import WandbLogger

    from tricklab.loggers import finish_wandb

    if isinstance(logger, WandbLogger):
        finish_wandb(flat_summary(record))
