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
    cfg: dict[str, Any], run_dir: Path, name: str, group: str | None, tags: list[str], config: dict[str, Any]
) -> Logger | None:
    """The logger ``cfg['name']`` writing under ``run_dir``; ``config`` is what W&B records as the run config."""
    kind = cfg["name"]
    check(LOGGERS, "logger", kind)
    if kind == "wandb":
        mode = wandb_mode(cfg["mode"])
        if mode == "disabled":
            return None
        return WandbLogger(
            name=name, project=cfg["project"], entity=cfg.get("entity"), save_dir=str(run_dir),
            group=cfg.get("group") or group, tags=[*tags, *cfg.get("tags", [])], config=config, mode=mode,
        )
    if kind == "csv":
        return CSVLogger(str(run_dir), name="csv", version="")
    if kind == "tensorboard":
        return TensorBoardLogger(str(run_dir), name="tensorboard", version="")
    return None  # none


def finish_wandb(summary: dict[str, Any]) -> None:
    """Write ``summary`` to the active W&B run and close it, so the next job of a sweep starts its own run."""
    import wandb

    if wandb.run is not None:
        wandb.run.summary.update(summary)
        wandb.finish()
