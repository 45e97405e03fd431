"""What a run is, seen from outside it: where it writes, its choices and overrides, its sweep's W&B group, the
search trial it reports to, and whether this process leads it (rank 0)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from tricklab.folders import sweep_group

# Config groups that are tricks or experimental choices (the rest are plumbing: paths, logger, hydra).
TRICK_GROUPS = ("data", "architecture", "init", "norm", "dropout", "optimizer", "scheduler", "clip", "averaging",
                "regularization", "trainer", "experiment", "gradient")


@dataclass
class RunContext:
    """Where a run writes and how it is named, taken from Hydra (or given by a test)."""

    run_dir: Path
    choices: dict[str, str] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    group: str | None = None
    # The search trial it reports to (tricklab.callbacks.pruning.TrialReporter), or None; put in by tricklab.train,
    # so that the run does not import the search that made it.
    trial: Any = None


def context_of(hydra_cfg: DictConfig, run_dir: Path, multirun: bool) -> RunContext:
    """The RunContext of a job from its ``hydra`` config node (its choices and overrides), writing to ``run_dir``."""
    choices = {g: str(c) for g, c in hydra_cfg.runtime.choices.items() if g in TRICK_GROUPS and c is not None}
    group = sweep_group(Path(hydra_cfg.sweep.dir)) if multirun else None
    return RunContext(run_dir, choices, list(hydra_cfg.overrides.task), group)


def leads() -> bool:
    """This process is the run's first (rank 0 on node 0), the one that holds the job's lease: the other
    ranks of a DDP run start with its lease already taken."""
    return all(os.environ.get(key, "0") == "0" for key in ("LOCAL_RANK", "NODE_RANK", "RANK"))
