"""Experiment loggers: W&B (offline unless credentials exist), CSV, TensorBoard, or none."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger

from tricklab.choices import check

LOGGERS = ("wandb", "csv", "tensorboard", "none")

WANDB_HOST = "api.wandb.ai"


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
    own_run: bool = False, quiet: bool = False,
) -> Logger | None:
    """The logger ``cfg['name']`` writing under ``run_dir``; ``config`` is what W&B records as the run config.
    ``quiet``: W&B prints nothing (``silent_wandb``).

    ``own_run``: start the W&B run now, as a new run beside any already open in this process (W&B's
    ``reinit="create_new"``): Lightning's WandbLogger would otherwise reuse the open one, and the members of a
    fused pack each need their own.
    """
    kind = cfg["name"]
    check(LOGGERS, "logger", kind)
    if kind == "wandb":
        mode = wandb_mode(cfg["mode"])
        if mode == "disabled":
            return None
        settings = {"name": name, "project": cfg["project"], "entity": cfg.get("entity"),
                    "group": cfg.get("group") or group, "tags": [*tags, *cfg.get("tags", [])], "config": config,
                    "mode": mode}
        if quiet:
            settings["settings"] = silent_wandb()
        if own_run:
            import wandb

            run = wandb.init(dir=str(run_dir), reinit="create_new", **settings)
            return WandbLogger(experiment=run, save_dir=str(run_dir))
        return WandbLogger(save_dir=str(run_dir), **settings)
    if kind == "csv":
        return CSVLogger(str(run_dir), name="csv", version="")
    if kind == "tensorboard":
        return TensorBoardLogger(str(run_dir), name="tensorboard", version="")
    return None  # none


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
