"""The job Hydra runs (``tricklab.train.main``): skipped when a resumed sweep finished it, held by its lease,
trained, and ended the way a user error or a disk fault is told; it returns the run's objective."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from tricklab.errors import TricklabError, disk_fault, exit_on_fault, exit_on_user_error, fault_file
from tricklab.folders import discard_if_unused
from tricklab.lease import LeaseHeld, job_lease
from tricklab.results import METRICS_FILE, read_metrics
from tricklab.run.context import RunContext, leads
from tricklab.run.status import finished, runs_again


def run_job(cfg: DictConfig, ctx: RunContext,
            sweep_fault: Callable[[OSError, Path], str | None] | None = None) -> float | None:
    """One job: the run ``ctx`` names, trained on ``cfg`` unless finished or held elsewhere; returns its
    ``objective`` (what a sweeper optimises). ``sweep_fault`` words a disk fault as the sweep this process is
    launching would (its resume command), or gives None to let the run word its own."""
    from tricklab.run.fit import run

    if ctx.group is not None and (status := finished(ctx.run_dir, runs_again(cfg))):  # resumed, any launcher
        print(f"tricklab: {ctx.run_dir} already {status}; skipped.")
        return objective(read_metrics(ctx.run_dir))
    try:
        with job_lease(ctx.run_dir) if leads() else contextlib.nullcontext():
            record = run(cfg, ctx)
    except LeaseHeld as held:  # another launcher runs this job: leave it to that one, touch nothing
        print(f"tricklab: {held}")
        return None
    except TricklabError as err:
        if ctx.group is None:  # a single run refused as it starts: its new folder holds nothing of the run
            discard_if_unused(ctx.run_dir)
        exit_on_user_error(err)
    except OSError as err:
        if not disk_fault(err):
            raise
        exit_on_fault((sweep_fault and sweep_fault(err, ctx.run_dir)) or disk_fault_message(err, ctx.run_dir))
    from pytorch_lightning.utilities import rank_zero_only

    from tricklab.results import print_summary

    if rank_zero_only.rank == 0:
        print_summary(record)
    return objective(record)


def disk_fault_message(err: OSError, run_dir: Path) -> str:
    """One paragraph: what the disk did, where, what of the run is kept, and how it goes on."""
    from tricklab.results import HISTORY_FILE

    record = {}
    with contextlib.suppress(OSError, ValueError):
        record = read_metrics(run_dir) or {}
    last = run_dir / "checkpoints" / "last.ckpt"
    kept = [f"{METRICS_FILE} (status {record.get('status')}, {record.get('epochs', 0)} epochs recorded)"] if record \
        else []
    kept += [f"{HISTORY_FILE}"] if (run_dir / HISTORY_FILE).is_file() else []
    kept += ["checkpoints/last.ckpt (whole: checkpoints are written to a temporary file, then renamed)"] \
        if last.is_file() else []
    where = fault_file(err)
    goes_on = ("run the same command again: it continues from last.ckpt" if last.is_file()
               else "run the same command again: it trains from the start")
    return (f"the run in {run_dir} stopped: {disk_fault(err)} while writing {where or 'its files'}. What it had "
            f"written is kept, each file whole: {', '.join(kept) or 'nothing yet'}. Free space (or fix the disk), "
            f"then {goes_on}.")


def objective(record: dict[str, Any]) -> float | None:
    """What a run returns to Hydra, and so what a sweeper optimises: its best validation accuracy (never a test
    metric: tuning on the test split would leak it). None without a validation split."""
    return record.get("best", {}).get("val/acc")
