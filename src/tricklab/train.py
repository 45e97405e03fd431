"""The Hydra entry point: compose the config, build data, model and trainer, fit, test, record results.

Heavy libraries (torch, Lightning, W&B) are imported inside ``run`` so ``--help``, ``--cfg`` and config
errors come back in well under a second.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from tricklab.chatter import quiet_libraries
from tricklab.config import CONF_DIR, PLUMBING, register_resolvers, validate
from tricklab.errors import (
    ConfigError,
    DataError,
    TricklabError,
    disk_fault,
    exit_on_fault,
    exit_on_user_error,
    fault_file,
)
from tricklab.launch.manifest import finished, job_status, runs_again
from tricklab.launch.naming import discard_if_unused, sweep_group
from tricklab.lease import LeaseHeld, job_lease
from tricklab.results import METRICS_FILE, read_metrics, set_aside_unreadable, timestamp, write_json_atomic

# Where rank 0 leaves its resume decision for the processes Lightning starts for the other ranks.
RESUME_DECISION = "TRICKLAB_RESUMED_FROM"

# What ``prepare`` and ``run`` import (lazily, see above); ``preload`` imports them ahead of a worker's first job.
RUN_MODULES = ("pytorch_lightning", "pytorch_lightning.loggers", "tricklab.callbacks", "tricklab.data.datamodule",
               "tricklab.loggers", "tricklab.models", "tricklab.module")

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
    trial: Any = None  # the search trial this run reports to (tricklab.callbacks.pruning.TrialReporter), or None


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


def get_ready(cfg: DictConfig) -> None:
    """What every run does before it loads anything: validate the config, set torch's threads, refuse GPUs this
    machine lacks."""
    validate(cfg)
    _set_threads(cfg.threads)
    _cheap_cuda_checks()
    check_devices(cfg.trainer)  # before the data is loaded: a run that cannot start should not read it first


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


def record_outcome(record: dict[str, Any], guard: Any) -> bool:
    """A run that trained to its end: ``completed``, or ``diverged`` with the step and reason the divergence guard
    gave; True when it diverged."""
    diverged = guard is not None and guard.diverged_at_step is not None
    record["status"] = "diverged" if diverged else "completed"
    record["diverged_at_step"] = guard.diverged_at_step if diverged else None
    record["diverged_reason"] = guard.reason if diverged else None
    return diverged


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


def device_of(trainer: Any) -> dict[str, Any]:
    """Where a run trains: torch's device (``cuda:0`` is the first GPU this process sees), its name, and the GPUs
    the process was given (CUDA_VISIBLE_DEVICES, as a launcher sets it per worker; null when unset)."""
    import torch

    device = trainer.strategy.root_device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"torch": str(device), "name": name, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    """Train and test one configuration; returns (and writes) the run's metrics.json content. The libraries'
    chatter is left out unless ``verbose`` (tricklab.chatter)."""
    with quiet_libraries(cfg.verbose):
        return _run(cfg, ctx)


def _run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    prepared = prepare(cfg, ctx)
    from pytorch_lightning.loggers import WandbLogger

    from tricklab.loggers import finish_wandb

    trainer, module, datamodule, record = prepared.trainer, prepared.module, prepared.datamodule, prepared.record
    callbacks, guard = prepared.callbacks, prepared.callbacks.guard
    raising: BaseException | None = None  # the error the run is ending with, if any
    # Under data parallelism every process runs this function; only rank 0 records the run.
    record_to_disk = trainer.is_global_zero
    if record_to_disk:
        open_record(ctx.run_dir, record, trainer)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=record["resumed_from"])
        if ctx.trial is not None and ctx.trial.pruned_at is not None:  # stopped by the search: not tested
            record.update(status="pruned", pruned_at_epoch=ctx.trial.pruned_at)
            return record
        diverged = record_outcome(record, guard)
        best = callbacks.checkpoint if cfg.callbacks.early_stopping.enabled and not diverged else None
        best = best if best is not None and best.best_model_path else None
        trainer.test(module, datamodule=datamodule, ckpt_path="best" if best else None, verbose=False)
        record["test"] = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test")}
        record_tested_weights(record, best, callbacks.history)
    except (KeyboardInterrupt, SystemExit) as err:
        record["status"], raising = "interrupted", err
        raise
    except Exception as err:
        raising = err
        if disk_fault(err):  # the machine's fault, not the run's: cut short, so the same command continues it
            record.update(status="interrupted", error=f"{type(err).__name__}: {err}")
            raise
        if guard is not None and guard.check_weights(trainer, module.model):
            # A per-step consumer (a logger, a histogram) met the NaN before the guard's check: still a divergence
            record.update(status="diverged", diverged_at_step=guard.diverged_at_step, diverged_reason=guard.reason,
                          error=f"{type(err).__name__}: {err}")
        else:
            record.update(status="failed", error=f"{type(err).__name__}: {err}")
            raise
    finally:
        finish_record(record, callbacks.history, trainer.global_step, prepared.started)
        if record_to_disk:
            try:
                write_json_atomic(ctx.run_dir / METRICS_FILE, record)
            except OSError as err:  # a full disk: the metrics.json written before stays whole
                if raising is None or not disk_fault(err):  # nothing else to report: this is what happened
                    raise
        if isinstance(prepared.logger, WandbLogger):
            finish_wandb(flat_summary(record))
    return record


def record_tested_weights(record: dict[str, Any], best: Any, history: Any) -> None:
    """Which weights the test ran on, in the record: ``best`` (the RunCheckpoints whose best epoch, by the early
    stopping monitor, was tested) or, when None, the final ones; and the epoch (1-based) they come from."""
    if best is not None:
        record.update(test_weights="best", test_epoch=best.best_epoch, test_monitor=best.monitor,
                      test_monitor_mode=best.mode)
    else:
        record.update(test_weights="final", test_epoch=len(history.rows), test_monitor=None, test_monitor_mode=None)


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
        wandb_run = WandbRun(wandb_run_id(ctx.run_dir, resuming, keep=_leads()), job_type(cfg, ctx))
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


def _run_name(ctx: RunContext) -> str:
    if ctx.overrides:
        return ",".join(o for o in ctx.overrides if not o.lstrip("+~").startswith(PLUMBING))
    return "-".join(ctx.choices.get(g, "") for g in ("data", "architecture", "optimizer")) or "run"


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


def context_from_hydra() -> RunContext:
    """The RunContext of the job Hydra is running now."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    ctx = context_of(hc, Path(hc.runtime.output_dir), multirun)
    if multirun:
        ctx.trial = search_trial(hc)
    return ctx


def context_of(hydra_cfg: DictConfig, run_dir: Path, multirun: bool) -> RunContext:
    """The RunContext of a job from its ``hydra`` config node (its choices and overrides), writing to ``run_dir``."""
    choices = {g: str(c) for g, c in hydra_cfg.runtime.choices.items() if g in TRICK_GROUPS and c is not None}
    group = sweep_group(Path(hydra_cfg.sweep.dir)) if multirun else None
    return RunContext(run_dir, choices, list(hydra_cfg.overrides.task), group)


def search_trial(hydra_cfg: DictConfig):
    """The TrialReporter of a job of ``hparams_search=optuna``, or None for any other job."""
    from tricklab.search.trial import link_from_hydra

    link = link_from_hydra(hydra_cfg)
    if link is None:
        return None
    from tricklab.callbacks.pruning import TrialReporter

    return TrialReporter(link)


register_resolvers()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    """``python train.py [overrides]``: one run; returns its ``objective`` (what a sweeper optimises)."""
    ctx = context_from_hydra()
    if ctx.group is not None and (status := finished(ctx.run_dir, runs_again(cfg))):  # resumed, any launcher
        print(f"tricklab: {ctx.run_dir} already {status}; skipped.")
        return objective(read_metrics(ctx.run_dir))
    try:
        with job_lease(ctx.run_dir) if _leads() else contextlib.nullcontext():
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
        from tricklab.launch.faults import launching_sweep_fault  # a job the basic launcher runs stops its sweep

        exit_on_fault(launching_sweep_fault(err, ctx.run_dir) or disk_fault_message(err, ctx.run_dir))
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


def _leads() -> bool:
    """This process is the run's first (rank 0 on node 0), the one that holds the job's lease: the other
    ranks of a DDP run start with its lease already taken."""
    return all(os.environ.get(key, "0") == "0" for key in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def cli() -> None:
    """``python train.py``: the pre-flight checks of the command line (tricklab.preflight), then Hydra, stopping
    on SIGTERM as on Ctrl-C (tricklab.signals)."""
    from tricklab.preflight import preflight
    from tricklab.signals import exit_like_a_shell

    preflight(sys.argv[1:])
    with exit_like_a_shell():
        main()


def objective(record: dict[str, Any]) -> float | None:
    """What a run returns to Hydra, and so what a sweeper optimises: its best validation accuracy (never a test
    metric: tuning on the test split would leak it). None without a validation split."""
    return record.get("best", {}).get("val/acc")


if __name__ == "__main__":  # python -m tricklab.train: run tricklab.train itself, not this __main__ copy, so that
    from tricklab.train import cli as _cli  # launchers' job processes import the task function by its module name

    _cli()
