"""Resuming a run cut short: the checkpoint it continues from (decided once, by rank 0), refused when unreadable,
and the config it continues with, which must be the one it started with.

The config is checked before Hydra runs (a single run: tricklab.run.preflight; a sweep's jobs: tricklab.checks),
because Hydra writes the new config over the run folder's ``.hydra/config.yaml`` before tricklab's code sees it.
The saved and the new config are compared unresolved, less the plumbing (tricklab.config.PLUMBING: where a run
writes and how it is shown). A change to what the run trains is refused; one to how long it trains or how often
it writes its checkpoints is what resuming is for (train on to more epochs), and is named.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tricklab.config import PLUMBING
from tricklab.errors import DataError
from tricklab.results import read_metrics
from tricklab.run.status import job_status

# Where rank 0 leaves its resume decision for the processes Lightning starts for the other ranks.
RESUME_DECISION = "TRICKLAB_RESUMED_FROM"
SAVED_CONFIG = Path(".hydra") / "config.yaml"
# Keys a resume may change: how long the run trains and how often it writes, not what it trains.
MAY_CHANGE = ("trainer.max_epochs", "callbacks.checkpoint.every_seconds")
_ABSENT = "(not set)"


def resume_decision(run_dir: Path) -> str | None:
    """``interrupted_checkpoint`` as rank 0 answered it, in every process of the run.

    Lightning's DDP starts the other ranks' processes by running this script again, with the environment of rank
    0, which has marked the run "running" by then: deciding again there would resume a run that rank 0 starts
    afresh (and hang both). A multi-node launch (srun) starts every rank at once, and each decides alone.
    """
    if os.environ.get("LOCAL_RANK", "0") != "0" and RESUME_DECISION in os.environ:
        return os.environ[RESUME_DECISION] or None
    decision = interrupted_checkpoint(run_dir)
    os.environ[RESUME_DECISION] = decision or ""
    return decision


def interrupted_checkpoint(run_dir: Path) -> str | None:
    """The last checkpoint of an earlier attempt of this run that was cut short (killed, preempted, requeued),
    to continue from; None for a new run or one that ended by itself (completed, diverged, failed)."""
    last = run_dir / "checkpoints" / "last.ckpt"
    return str(last) if last.is_file() and job_status(run_dir) in ("running", "interrupted") else None


def read_checkpoint(path: Path, run_dir: Path) -> dict[str, Any]:
    """The checkpoint to resume from; refuse one torch cannot read (truncated by a full disk or a kill mid-write),
    before metrics.json is touched, so the record of the epochs done stays; say how to start over."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError... for a bad file
        done = (read_metrics(run_dir) or {}).get("epochs", "some")
        raise DataError(
            f"{path} cannot be read ({type(err).__name__}: {err}), so the run in {run_dir}, cut short after "
            f"{done} epochs (its metrics.json keeps that record), cannot continue from it. To train it again from "
            f"the start, move the checkpoint aside (mv {path} {path}.unreadable) and run the same command, or add "
            f"overwrite=true."
        ) from None


def resume_problems(run_dir: Path, config: DictConfig) -> list[str]:
    """A paragraph refusing ``config`` for the run in ``run_dir`` when that run would continue from its
    last.ckpt and ``config`` changes what it trains; the changes a resume may make are printed (stderr)."""
    saved = run_dir / SAVED_CONFIG
    if config.get("overwrite") or not saved.is_file() or interrupted_checkpoint(run_dir) is None:
        return []
    changed = config_changes(OmegaConf.to_container(OmegaConf.load(saved)), _task_config(config))
    allowed = {key: change for key, change in changed.items() if key in MAY_CHANGE}
    if allowed:
        print(f"tricklab: {run_dir} resumes with {_listed(allowed)}.", file=sys.stderr)
    refused = {key: change for key, change in changed.items() if key not in MAY_CHANGE}
    if not refused:
        return []
    return [f"{run_dir} holds a run cut short that this command would continue from its last checkpoint, but with "
            f"another config: {_listed(refused)} (saved in {saved}). A resumed run must train the config it "
            f"started with, so nothing was run or changed. Give the same settings to continue it, add overwrite=true "
            f"to train it again from the start there, or choose another folder."]


def config_changes(saved: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (saved value, new value) for every value that differs, plumbing keys left out."""
    old, now = _leaves(saved), _leaves(new)
    return {key: (old.get(key, _ABSENT), now.get(key, _ABSENT)) for key in sorted(old.keys() | now.keys())
            if old.get(key, _ABSENT) != now.get(key, _ABSENT) and not _plumbing(key)}


def _task_config(config: DictConfig) -> dict[str, Any]:
    """The config as Hydra saves it in .hydra/config.yaml: unresolved, without the ``hydra`` node."""
    return {k: v for k, v in OmegaConf.to_container(config).items() if k != "hydra"}


def _leaves(tree: Any, key: str = "") -> dict[str, Any]:
    """Every leaf of nested dicts under its dotted key (a list, or an empty dict, is one value)."""
    if not isinstance(tree, dict) or not tree:
        return {key: tree}
    return {leaf: value for k, v in tree.items() for leaf, value in _leaves(v, f"{key}.{k}" if key else k).items()}


def _plumbing(key: str) -> bool:
    return any(key == p or key.startswith(f"{p}.") for p in PLUMBING)


def _listed(changes: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{key} {old} → {new}" for key, (old, new) in changes.items())
