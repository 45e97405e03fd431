"""Train a pack: K jobs whose configs differ only in seed and init, as one stacked model on one Trainer, each job
recorded in its own folder exactly as it would be alone (metrics.json, history.csv, checkpoints,
test_predictions.npz, its logger's run).

Reproducibility: member k starts from the weights its job would start from (its seed, its init) and sees the
batches in its job's order, so without dropout it trains as its unfused twin does, up to floating-point rounding
of the batched kernels. Dropout masks come from the pack's random stream (seeded by the first member's seed):
the same pack gives the same results again, but a member is only statistically its twin.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from tricklab.chatter import quiet_libraries
from tricklab.run.context import RunContext
from tricklab.run.fit import Recorded, failed, fit_test_record
from tricklab.run.record import flat_summary, new_record, open_record, record_outcome, record_tested_weights
from tricklab.run.resume import interrupted_checkpoint, read_checkpoint
from tricklab.run.trainer import build_trainer, get_ready, run_logger

PACK_RESUME_FILE = "pack-resume.ckpt"  # the members' last checkpoints stacked, in the first member's folder


def run_pack(jobs: list[tuple[DictConfig, RunContext]]) -> list[dict[str, Any]]:
    """Train and test the jobs as one pack; returns (and writes) each job's metrics.json content, in order.

    Members that were cut short at different steps (or some not at all) cannot continue as one pack: each group
    that resumes from the same step trains as a pack of its own, one after the other. A member that had stopped
    (early stopping, divergence) before the pack was cut short joins a resumed group, frozen, to be tested.
    """
    with quiet_libraries(any(cfg.verbose for cfg, _ in jobs)):
        return _run_pack(jobs)


def _run_pack(jobs: list[tuple[DictConfig, RunContext]]) -> list[dict[str, Any]]:
    for cfg, _ in jobs:
        get_ready(cfg)
    groups: dict[int | None, list[tuple[DictConfig, RunContext]]] = {}
    stopped, last = [], {}  # last: each job's checkpoint to resume from (read once), or None
    for job in jobs:
        point, last[id(job)] = _resume_point(job[1].run_dir, job[0])
        (stopped if point == STOPPED else groups.setdefault(point, [])).append(job)
    resumed = [step for step in groups if step is not None]
    if stopped:
        groups.setdefault(resumed[0] if resumed else STOPPED, []).extend(stopped)
    records, position = {}, {id(job): i for i, job in enumerate(jobs)}
    for group in groups.values():
        group.sort(key=lambda job: position[id(job)])  # the pack's order: dropout masks are drawn by position
        for (_, ctx), record in zip(group, _train_pack(group, [last[id(job)] for job in group]), strict=True):
            records[ctx.run_dir] = record
    return [records[ctx.run_dir] for _, ctx in jobs]


STOPPED = -1  # the resume point of a member that had stopped in its pack


def _resume_point(run_dir: Path, cfg: DictConfig) -> tuple[int | None, dict[str, Any] | None]:
    """The step of the checkpoint the job would resume from (STOPPED if the member had stopped in its pack; None
    for a fresh start), and that checkpoint (DataError, as for an unfused run, when it cannot be read)."""
    from tricklab.fuse.checkpoints import PACK_MEMBER

    last = None if cfg.get("overwrite") else interrupted_checkpoint(run_dir)
    if last is None:
        return None, None
    checkpoint = read_checkpoint(Path(last), run_dir)
    stopped = checkpoint.get("callbacks", {}).get(PACK_MEMBER, {}).get("stopped")
    return (STOPPED if stopped else int(checkpoint["global_step"])), checkpoint


def _train_pack(jobs: list[tuple[DictConfig, RunContext]], last: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    import pytorch_lightning as pl

    from tricklab.callbacks.averaging import build_averaging
    from tricklab.fuse.data import PackDataModule
    from tricklab.fuse.members import PackGuards, PackPredictions, PackRecorder
    from tricklab.fuse.module import PackModule
    from tricklab.fuse.stack import Pack
    from tricklab.models import build_model
    from tricklab.results import PREDICTIONS_FILE
    from tricklab.tricks.step import build_step_tricks

    started = time.perf_counter()
    first = jobs[0][0]
    plain = [OmegaConf.to_container(cfg, resolve=True) for cfg, _ in jobs]
    for _, ctx in jobs:
        ctx.run_dir.mkdir(parents=True, exist_ok=True)
    datamodule = PackDataModule(plain[0]["data"], Path(first.paths.data_dir), first.seed,
                                first.trainer.steps_per_call, first.trainer.limit_train_batches,
                                seeds=[cfg.seed for cfg, _ in jobs])
    models = []
    for (cfg, _), p in zip(jobs, plain, strict=True):
        pl.seed_everything(cfg.seed, workers=True, verbose=False)  # as the job alone: its init draw
        models.append(build_model(p["architecture"], p["norm"], p["dropout"], p["init"], datamodule.input_shape,
                                  datamodule.num_classes))
    params = sum(p.numel() for p in models[0].parameters())
    module = PackModule(Pack(models), build_step_tricks(plain[0], members=True))
    members = [_member(k, cfg, ctx, p, params, datamodule)
               for k, ((cfg, ctx), p) in enumerate(zip(jobs, plain, strict=True))]
    resume = _pack_resume(members, module.model, last)
    average = build_averaging(plain[0]["averaging"])  # one weight average of the pack: each member's
    callbacks = [PackRecorder(members), PackGuards(members),
                 PackPredictions([m.run_dir / PREDICTIONS_FILE for m in members]), *([average] if average else [])]
    trainer = build_trainer(first, members[0].run_dir, callbacks, None)
    pl.seed_everything(first.seed, workers=True, verbose=False)  # the pack's own stream (dropout masks)
    for m in members:
        m.record["fused"] = {"member": m.k, "pack": [str(other.run_dir) for other in members]}
        open_record(m.run_dir, m.record, trainer)
        if m.logger is not None:  # what Lightning logs of a run's module at the start of fit
            m.logger.log_hyperparams(module.hparams_initial)
    recorded = [Recorded(m.run_dir, m.record, m.history, functools.partial(_steps, m, trainer),
                         functools.partial(_close_logger, m.logger)) for m in members]
    try:
        fit_test_record(trainer, module, datamodule, resume, recorded, started,
                        functools.partial(_test_pack, first, trainer, module, datamodule, members),
                        functools.partial(failed, recorded))
    finally:
        (members[0].run_dir / "checkpoints" / PACK_RESUME_FILE).unlink(missing_ok=True)
    return [m.record for m in members]


def _test_pack(first: DictConfig, trainer: Any, module: Any, datamodule: Any, members: list) -> None:
    """After the fit: test every member at once, each on the weights it would be tested on alone (its best under
    early stopping, unless it diverged), and record each member's outcome and test metrics."""
    use_best = first.callbacks.early_stopping.enabled
    for m in members:
        best = m.checkpoints if use_best and m.best_state and m.stopped != "diverged" else None
        record_tested_weights(m.record, best, m.history)
        if best is not None:
            module.model.load_member(m.k, m.best_state)
    trainer.test(module, datamodule=datamodule, verbose=False)
    tests = {key: v.tolist() for key, v in module.epoch_metrics.items() if key.startswith("test")}
    for m in members:
        record_outcome(m.record, m.guard)
        m.record["test"] = {key: float(column[m.k]) for key, column in tests.items()}
        if m.logger is not None:
            m.logger.log_metrics(m.record["test"], step=m.steps)
            m.logger.save()


def _steps(member: Any, trainer: Any) -> int:
    """The optimizer steps a member took: its own count, or the pack's when it never stopped."""
    return member.steps or trainer.global_step


def _close_logger(logger: Any, record: dict[str, Any]) -> None:
    """A member's logger, closed by hand: none of them is the Trainer's, which would close it."""
    from pytorch_lightning.loggers import WandbLogger

    from tricklab.loggers import finish_wandb

    if isinstance(logger, WandbLogger):
        finish_wandb(flat_summary(record), logger.experiment)
    elif logger is not None:
        logger.finalize("success" if record["status"] in ("completed", "diverged") else "failed")


def _member(k: int, cfg: DictConfig, ctx: RunContext, plain: dict[str, Any], params: int, datamodule: Any):
    """Member k: the record and callbacks its job would have alone, stopping the member instead of the trainer."""
    from pytorch_lightning.callbacks import EarlyStopping

    from tricklab.callbacks import build_callbacks
    from tricklab.fuse.members import Member, MemberCheckpoints

    record = new_record(cfg, ctx, params, datamodule)
    alone = build_callbacks(cfg.callbacks, ctx.run_dir, averaging=cfg.averaging)  # its history's columns too
    member = Member(k, ctx.run_dir, record, alone.history,
                    logger=run_logger(cfg, plain, ctx, record["name"], params, own_run=True,
                                      resuming=bool(record["resumed_from"])))
    if alone.guard is not None:
        alone.guard.stop_run = member.stop
        member.guard = alone.guard
    if alone.checkpoint is not None:
        member.checkpoints = MemberCheckpoints(member, alone.checkpoint)
    member.early_stopping = next((c for c in alone.others if isinstance(c, EarlyStopping)), None)
    return member


def _pack_resume(members: list, pack: Any, checkpoints: list[dict[str, Any] | None]) -> str | None:
    """The members' last checkpoints stacked into one the pack's Trainer resumes from (their callbacks' states
    restored into each member), or None for a fresh pack."""
    from tricklab.fuse.checkpoints import pack_checkpoint

    if any(checkpoint is None for checkpoint in checkpoints):
        return None
    for m, checkpoint in zip(members, checkpoints, strict=True):
        m.load_callback_states(checkpoint.get("callbacks", {}))
    training = [m.k for m in members if m.stopped is None]
    path = members[0].run_dir / "checkpoints" / PACK_RESUME_FILE
    torch.save(pack_checkpoint(checkpoints, [*pack.param_names, *pack.buffer_names],
                               loops_from=training[0] if training else 0), path)
    return str(path)
