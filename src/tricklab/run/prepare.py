"""A run built but not yet fitted: the config validated, the machine checked, then data, model, LightningModule,
callbacks, logger and Trainer (seeded).

Heavy libraries (torch, Lightning, W&B) are imported inside ``prepare`` so ``--help``, ``--cfg`` and config
errors come back in well under a second.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tricklab.run.context import RunContext
from tricklab.run.record import new_record
from tricklab.run.resume import read_checkpoint
from tricklab.run.trainer import build_trainer, get_ready, run_logger

# What a run imports (lazily, see above); ``preload`` imports them ahead of a worker's first job.
RUN_MODULES = ("pytorch_lightning", "pytorch_lightning.loggers", "tricklab.callbacks", "tricklab.data.datamodule",
               "tricklab.loggers", "tricklab.models", "tricklab.module")


@dataclass
class PreparedRun:
    """Everything one run trains with, built but not yet fitted (``prepare``); ``record`` is its metrics.json."""

    datamodule: Any
    module: Any
    callbacks: Any
    trainer: Any
    logger: Any
    record: dict[str, Any]
    started: float


def prepare(cfg: DictConfig, ctx: RunContext) -> PreparedRun:
    """Validate ``cfg``, then build data, model, LightningModule, callbacks, logger and Trainer (seeded)."""
    get_ready(cfg)
    import pytorch_lightning as pl

    from tricklab.callbacks import build_callbacks
    from tricklab.data.datamodule import TensorDataModule
    from tricklab.models import build_model
    from tricklab.module import ClassifierModule
    from tricklab.tricks.step import build_step_tricks

    started = time.perf_counter()
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    plain = OmegaConf.to_container(cfg, resolve=True)
    datamodule = TensorDataModule(plain["data"], Path(cfg.paths.data_dir), cfg.seed, cfg.trainer.steps_per_call,
                                  cfg.trainer.limit_train_batches)
    model = build_model(plain["architecture"], plain["norm"], plain["dropout"], plain["init"],
                        datamodule.input_shape, datamodule.num_classes)
    module = ClassifierModule(model, build_step_tricks(plain))
    record = new_record(cfg, ctx, sum(p.numel() for p in model.parameters()), datamodule)
    if record["resumed_from"]:  # an unreadable checkpoint is refused before metrics.json is touched
        read_checkpoint(Path(record["resumed_from"]), ctx.run_dir)
    callbacks = build_callbacks(cfg.callbacks, ctx.run_dir, cfg.diagnostics, cfg.averaging, cfg.verbose)
    if ctx.trial is not None:
        callbacks.others.append(ctx.trial)
    logger = run_logger(cfg, plain, ctx, record["name"], record["params"], resuming=bool(record["resumed_from"]))
    trainer = build_trainer(cfg, ctx.run_dir, callbacks.all(), logger)
    return PreparedRun(datamodule, module, callbacks, trainer, logger, record, started)


def preload() -> None:
    """Import what every run imports before it trains (torch, Lightning, tricklab's training modules): a local
    sweep's worker calls this as it starts, while the sweeper is still checking and composing the jobs, rather
    than paying for it in its first job."""
    for name in RUN_MODULES:
        importlib.import_module(name)
