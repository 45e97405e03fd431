"""A run's record, its metrics.json: opened as the run starts (status running, the checkpoint it resumes from, its
device), then its outcome (completed, diverged), the weights it was tested on and its closing numbers."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from tricklab.config import PLUMBING
from tricklab.results import METRICS_FILE, set_aside_unreadable, timestamp, write_json_atomic
from tricklab.run.context import RunContext
from tricklab.run.resume import resume_decision
from tricklab.run.trainer import device_of


def new_record(cfg: DictConfig, ctx: RunContext, params: int, datamodule: Any) -> dict[str, Any]:
    """The run's metrics.json as it starts (status running), with the checkpoint it resumes from, if any (which the
    caller reads: ``read_checkpoint``)."""
    record: dict[str, Any] = {
        "status": "running", "name": cfg.name or _run_name(ctx), "seed": cfg.seed, "arm": cfg.get("arm"),
        "choices": ctx.choices, "overrides": ctx.overrides, "run_dir": str(ctx.run_dir), "params": params,
        "input_shape": list(datamodule.input_shape), "num_classes": datamodule.num_classes,
        "sizes": datamodule.sizes(), "resumed_from": None if cfg.get("overwrite") else resume_decision(ctx.run_dir),
        "started_at": timestamp(),  # this attempt's
    }
    return record


def _run_name(ctx: RunContext) -> str:
    if ctx.overrides:
        return ",".join(o for o in ctx.overrides if not o.lstrip("+~").startswith(PLUMBING))
    return "-".join(ctx.choices.get(g, "") for g in ("data", "architecture", "optimizer")) or "run"


def open_record(run_dir: Path, record: dict[str, Any], trainer: Any) -> None:
    """Write the starting metrics.json, with the device ``trainer`` trains on; an earlier one that cannot be read is
    kept aside, and the record says so."""
    record["device"] = device_of(trainer)
    moved = set_aside_unreadable(run_dir)
    if moved is not None:
        print(f"tricklab: warning: {run_dir / METRICS_FILE} could not be read; kept as {moved.name}, and "
              f"the run starts over.", file=sys.stderr)
        record["set_aside"] = moved.name
    write_json_atomic(run_dir / METRICS_FILE, record)


def record_outcome(record: dict[str, Any], guard: Any) -> bool:
    """A run that trained to its end: ``completed``, or ``diverged`` with the step and reason the divergence guard
    gave; True when it diverged."""
    diverged = guard is not None and guard.diverged_at_step is not None
    record["status"] = "diverged" if diverged else "completed"
    record["diverged_at_step"] = guard.diverged_at_step if diverged else None
    record["diverged_reason"] = guard.reason if diverged else None
    return diverged


def record_tested_weights(record: dict[str, Any], best: Any, history: Any) -> None:
    """Which weights the test ran on, in the record: ``best`` (the RunCheckpoints whose best epoch, by the early
    stopping monitor, was tested) or, when None, the final ones; and the epoch (1-based) they come from."""
    if best is not None:
        record.update(test_weights="best", test_epoch=best.best_epoch, test_monitor=best.monitor,
                      test_monitor_mode=best.mode)
    else:
        record.update(test_weights="final", test_epoch=len(history.rows), test_monitor=None, test_monitor_mode=None)


def finish_record(record: dict[str, Any], history, steps: int, started: float) -> None:
    """The run's closing numbers in its record: epochs and ``steps`` done, end time, wall times, final and best
    metrics."""
    record["epochs"] = len(history.rows)
    record["steps"] = steps
    record["ended_at"] = timestamp()
    record["wall_time_s"] = round(time.perf_counter() - started, 3)  # this attempt's
    record["wall_time_total_s"] = round(history.carried_s + record["wall_time_s"], 3)  # with earlier epochs
    record["final"] = {k: v for k, v in (history.rows[-1] if history.rows else {}).items() if "/" in k or k in
                       ("lr", "grad_norm")}
    best = {}
    for key, mode in (("val/acc", "max"), ("val/loss", "min"), ("train/loss", "min")):
        found = history.best(key, mode)
        if found:
            best[key], best[f"{key}_epoch"] = found
    record["best"] = best


def flat_summary(record: dict[str, Any]) -> dict[str, Any]:
    """What a W&B run's summary shows of the record."""
    summary = {"status": record["status"], "epochs": record.get("epochs"), "wall_time_s": record.get("wall_time_s")}
    summary.update({f"best/{k}": v for k, v in record.get("best", {}).items()})
    summary.update(record.get("test", {}))
    return summary
