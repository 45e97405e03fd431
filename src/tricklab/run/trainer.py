"""The Lightning Trainer of a run and the machine it runs on: what every run checks and sets before it loads
anything (its config, torch's threads, the GPUs asked for), the device it trains on, and its experiment logger
(tagged with the run's choices)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from tricklab.config import PLUMBING, validate
from tricklab.errors import ConfigError
from tricklab.run.context import TRICK_GROUPS, RunContext, leads


def build_trainer(cfg: DictConfig, run_dir: Path, callbacks: list[Any], logger: Any):
    """The Lightning Trainer for ``cfg.trainer`` with ``callbacks`` and ``logger``; ConfigError for settings this
    machine cannot run."""
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    t = cfg.trainer
    try:
        return _trainer(cfg, run_dir, callbacks, logger)
    except MisconfigurationException as err:
        raise ConfigError(
            f"trainer settings accelerator={t.accelerator}, devices={t.devices}, strategy={t.strategy}, "
            f"precision={t.precision} cannot run on this machine: {err}"
        ) from None


def _trainer(cfg: DictConfig, run_dir: Path, callbacks: list[Any], logger: Any):
    import pytorch_lightning as pl

    t = cfg.trainer
    return pl.Trainer(  # limit_train_batches is the datamodule's (it counts minibatches); clipping the module's
        max_epochs=t.max_epochs, accelerator=t.accelerator, devices=t.devices, strategy=t.strategy,
        precision=t.precision, deterministic=t.deterministic, check_val_every_n_epoch=t.check_val_every_n_epoch,
        limit_val_batches=0 if cfg.data.val_fraction == 0 else t.limit_val_batches,
        callbacks=callbacks, logger=logger or False,
        enable_checkpointing=True,  # HistoryWriter is a Checkpoint, so Lightning adds no default one
        enable_progress_bar=cfg.callbacks.progress_bar != "none",
        enable_model_summary=cfg.callbacks.progress_bar != "none" and cfg.verbose,  # "FLOPs 0" for 8 lines
        default_root_dir=str(run_dir), num_sanity_val_steps=0, log_every_n_steps=1, **_pass_through(t),
    )

# cfg.trainer keys tricklab reads itself; any other key (added with +trainer.<name>=...) goes to pl.Trainer.
TRAINER_KEYS = ("max_epochs", "accelerator", "devices", "strategy", "precision", "deterministic",
                "limit_train_batches", "steps_per_call", "limit_val_batches", "check_val_every_n_epoch")
# pl.Trainer arguments _trainer sets from elsewhere: not open to +trainer.<name>.
SET_BY_TRICKLAB = ("callbacks", "logger", "enable_checkpointing", "enable_progress_bar", "enable_model_summary",
                   "default_root_dir", "num_sanity_val_steps", "log_every_n_steps")


def _pass_through(t: DictConfig) -> dict[str, Any]:
    """The ``+trainer.*`` keys, checked against pl.Trainer's signature (less what tricklab sets itself)."""
    import inspect

    import pytorch_lightning as pl

    extra = {k: v for k, v in OmegaConf.to_container(t, resolve=True).items() if k not in TRAINER_KEYS}
    takes = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self", *TRAINER_KEYS, *SET_BY_TRICKLAB}
    unknown = sorted(set(extra) - takes)
    if unknown:
        raise ConfigError(f"trainer.{unknown[0]} is not a setting of Lightning's Trainer that tricklab passes "
                          f"through; +trainer.<name> takes one of: {', '.join(sorted(takes))}.")
    return extra


def get_ready(cfg: DictConfig) -> None:
    """What every run does before it loads anything: validate the config, set torch's threads, refuse GPUs this
    machine lacks."""
    validate(cfg)
    _set_threads(cfg.threads)
    _cheap_cuda_checks()
    check_devices(cfg.trainer)  # before the data is loaded: a run that cannot start should not read it first


def check_devices(trainer: DictConfig) -> None:
    """ConfigError when ``trainer.accelerator``/``trainer.devices`` ask for GPUs this machine does not have (the
    rest of what Lightning checks about them happens when the Trainer is built)."""
    import torch

    if str(trainer.accelerator) not in ("gpu", "cuda"):
        return
    have, devices = torch.cuda.device_count(), trainer.devices
    wanted = len(devices) if isinstance(devices, (list, tuple, ListConfig)) else devices
    wanted = have if wanted in ("auto", -1) else int(wanted) if str(wanted).lstrip("-").isdigit() else 1
    if have == 0 or wanted > have:
        raise ConfigError(
            f"trainer.accelerator={trainer.accelerator} with trainer.devices={devices} cannot run on this machine: it "
            f"asks for {max(wanted, 1)} GPU(s), and this machine has {have} CUDA device(s) (CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); use trainer.accelerator=cpu or auto, or fewer "
            f"devices."
        )


def _cheap_cuda_checks() -> None:
    """Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 (fork-safe CUDA checks); while CUDA is uninitialised, every
    ``torch.cuda.is_available()`` then loads NVML anew, and torch's optimizers ask once a step (a measurable share
    of a small net's step: benchmarks/README.md). With no GPU there is no CUDA state a fork could break, so torch
    may ask the CUDA runtime instead (cached)."""
    import torch

    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1" and torch.cuda.device_count() == 0:
        del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]


def _set_threads(threads: int | None) -> None:
    """torch threads: the configured count, else OMP_NUM_THREADS, else every core we may use; never more than
    the cores we may use (a sweep worker owns only its share of them)."""
    import torch

    cores = len(os.sched_getaffinity(0))
    torch.set_num_threads(min(threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or cores, cores))


def device_of(trainer: Any) -> dict[str, Any]:
    """Where a run trains: torch's device (``cuda:0`` is the first GPU this process sees), its name, and the GPUs
    the process was given (CUDA_VISIBLE_DEVICES, as a launcher sets it per worker; null when unset)."""
    import torch

    device = trainer.strategy.root_device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"torch": str(device), "name": name, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def run_logger(cfg: DictConfig, plain: dict[str, Any], ctx: RunContext, name: str, params: int, own_run: bool = False,
               resuming: bool = False):
    """The run's experiment logger (``logger=...``), tagged with its choices; ``own_run``: a W&B run of its own
    even while another is open in this process (the members of a fused pack); ``resuming``: the run continues
    from its checkpoint, and its W&B run too (the id kept in the run folder)."""
    from tricklab.loggers import WandbRun, build_logger, wandb_run_id

    tags = [f"{group}:{choice}" for group, choice in ctx.choices.items()]
    wandb_config = {**ctx.choices, **overridden_values(cfg, ctx.overrides), "seed": cfg.seed, "params": params,
                    "overrides": ctx.overrides, "cfg": plain}
    wandb_run = None
    if plain["logger"]["name"] == "wandb":  # only rank 0 keeps the id: the other ranks never open the W&B run
        wandb_run = WandbRun(wandb_run_id(ctx.run_dir, resuming, keep=leads()), job_type(cfg, ctx))
    return build_logger(plain["logger"], ctx.run_dir, name, ctx.group, tags, wandb_config, own_run,
                        quiet=not cfg.verbose, wandb_run=wandb_run)


def overridden_values(cfg: DictConfig, overrides: list[str]) -> dict[str, Any]:
    """Each key set on the command line (or by the sweep) with its value as the run uses it (``dropout.p: 0.5``,
    resolved and typed), for W&B's flat config columns; group choices (``init=he``, already a column of their
    own), other groups' choices, deletions and plumbing (paths, logger, ...) are left out."""
    values = {}
    for override in overrides:
        if override.startswith("~"):
            continue
        key = override.lstrip("+").partition("=")[0]
        if key in TRICK_GROUPS or key.startswith(PLUMBING):
            continue
        value = OmegaConf.select(cfg, key, default=None)
        if isinstance(value, DictConfig):  # a group's choice outside TRICK_GROUPS (diagnostics=on): it is in cfg
            continue
        values[key] = OmegaConf.to_container(value, resolve=True) if isinstance(value, ListConfig) else value
    return values


def job_type(cfg: DictConfig, ctx: RunContext) -> str:
    """The W&B job type of a run: ``search`` for a trial of hparams_search, ``study`` for a job of a study's sweep
    (its experiment has a study block), else ``train``."""
    if ctx.trial is not None:
        return "search"
    return "study" if ctx.group is not None and cfg.get("study") else "train"
