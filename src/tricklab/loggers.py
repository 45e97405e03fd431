"""Experiment loggers: W&B (offline unless credentials exist), CSV, TensorBoard, or none."""

from __future__ import annotations

import netrc
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger

from tricklab.choices import check

LOGGERS = ("wandb", "csv", "tensorboard", "none")

WANDB_HOST = "api.wandb.ai"
# In a run folder: the id of its W&B run, so that a run resumed from its checkpoint continues that W&B run.
WANDB_ID_FILE = "wandb_id.txt"


@dataclass
class WandbRun:
    """Which W&B run a job logs to: its id (an earlier attempt's, for a resumed run) and its job type (train,
    search, study)."""

    run_id: str
    job_type: str = "train"


class TricklabWandbLogger(WandbLogger):
    """Lightning's WandbLogger less its hyper-parameter logging: at the start of fit Lightning writes the module's
    hparams (optimizer, scheduler, clip, regularization as dicts) into the run config, over the flat choice
    columns (``optimizer: adam``); the same values are already there, in the composed config under ``cfg``."""

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Nothing: the run config is written once, when the run starts (``build_logger``)."""


def wandb_run_id(run_dir: Path, resuming: bool, keep: bool = True) -> str:
    """The W&B run id of the run in ``run_dir``: the one kept in its WANDB_ID_FILE when the run resumes, else a
    new one, kept there (``keep``) for a later resume. A run started over gets a new id: its history starts at
    step 0 again, which W&B would refuse to append to the old run."""
    path = Path(run_dir) / WANDB_ID_FILE
    if resuming and path.is_file() and (kept := path.read_text().strip()):
        return kept
    run_id = secrets.token_hex(4)  # 8 of [0-9a-f]: a valid W&B run id, as unlikely to clash as W&B's own
    if keep:
        path.write_text(run_id + "\n")
    return run_id


def has_wandb_credentials() -> bool:
    """True when an API key is in WANDB_API_KEY or in ~/.netrc (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(WANDB_HOST) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_mode(requested: str) -> str:
    """``auto`` becomes online with credentials, offline without; the others are kept."""
    if requested == "auto":
        return "online" if has_wandb_credentials() else "offline"
    return requested


def build_logger(
    cfg: dict[str, Any], run_dir: Path, name: str, group: str | None, tags: list[str], config: dict[str, Any],
    own_run: bool = False, quiet: bool = False, wandb_run: WandbRun | None = None,
) -> Logger | None:
    """The logger ``cfg['name']`` writing under ``run_dir``; ``config`` is what W&B records as the run config.
    ``quiet``: W&B prints nothing (``silent_wandb``); ``wandb_run``: the W&B run's id and job type (default: a
    new id, job type train).

    ``own_run``: start the W&B run now, as a new run beside any already open in this process (W&B's
    ``reinit="create_new"``): Lightning's WandbLogger would otherwise reuse the open one, and the members of a
    fused pack each need their own.
    """
    kind = cfg["name"]
    check(LOGGERS, "logger", kind)
    if kind == "wandb":
        return _wandb_logger(cfg, run_dir, name, group, tags, config, own_run, quiet, wandb_run)
    if kind == "csv":
        return CSVLogger(str(run_dir), name="csv", version="")
    if kind == "tensorboard":
        return TensorBoardLogger(str(run_dir), name="tensorboard", version="")
    return None  # none


def _wandb_logger(
    cfg: dict[str, Any], run_dir: Path, name: str, group: str | None, tags: list[str], config: dict[str, Any],
    own_run: bool, quiet: bool, wandb_run: WandbRun | None,
) -> WandbLogger | None:
    mode = wandb_mode(cfg["mode"])
    if mode == "disabled":
        return None
    wandb_run = wandb_run or WandbRun(wandb_run_id(run_dir, resuming=False, keep=False))
    settings = {"name": name, "project": cfg["project"], "entity": cfg.get("entity"),
                "group": cfg.get("group") or group, "tags": [*tags, *cfg.get("tags", [])], "config": config,
                "mode": mode, "id": wandb_run.run_id, "job_type": wandb_run.job_type,
                "resume": "allow"}  # an id W&B has seen continues that run; a new id starts one
    if quiet:
        settings["settings"] = silent_wandb()
    if own_run:
        import wandb

        run = wandb.init(dir=str(run_dir), reinit="create_new", **settings)
        return TricklabWandbLogger(experiment=run, save_dir=str(run_dir))
    return TricklabWandbLogger(save_dir=str(run_dir), **settings)


def silent_wandb() -> Any:
    """W&B's settings for a run that prints nothing (no banners, no run summary), also made W&B's terminal
    setting now: W&B checks the ``anonymous`` argument Lightning always passes, and warns that it has no
    effect, before the run's own settings apply."""
    import wandb

    settings = wandb.Settings(silent=True)
    wandb.termsetup(settings, None)
    return settings


def finish_wandb(summary: dict[str, Any], run: Any = None) -> None:
    """Write ``summary`` to ``run`` (default: the active W&B run) and close it, so the next job of a sweep starts
    its own run."""
    import wandb

    run = run or wandb.run
    if run is not None:
        run.summary.update(summary)
        run.finish()
