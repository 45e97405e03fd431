"""Which jobs of a sweep can train together as one pack, and why a job cannot.

Jobs fuse when their configs differ only in what acts before training — ``seed`` (the init draw, the batch order)
and ``init`` (the scheme) — and the config is one the pack trains exactly as each job would alone. What cannot
fuse runs unfused, with one line saying why; ``why_not_fused`` is that line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tricklab.errors import ConfigError

# What may differ between the members of a pack (everything else must be equal).
MEMBER_KEYS = ("seed", "init", "name", "arm")
# Architectures whose every layer has a torch.func.vmap batching rule (nn.RNN has none; torchvision's models
# are too large to gain from fusing).
FUSABLE_ARCHITECTURES = ("mlp", "cnn", "resnet", "plain_deep", "inception")
PRECISIONS = ("32-true", "32", "64-true", "64")


def check_fuse(size: Any) -> None:
    """ConfigError unless ``hydra.launcher.fuse`` is a positive integer."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        shown = str(size).lower() if isinstance(size, bool) else size
        raise ConfigError(f"hydra.launcher.fuse={shown} is not allowed; it must be a positive integer: the most jobs "
                          f"trained together as one pack (1: every job alone).")


def why_not_fused(cfg: DictConfig) -> str | None:
    """Why a job with this config trains alone, or None when it can be a member of a pack."""
    family = cfg.architecture.get("family", cfg.architecture.name)
    t = cfg.trainer
    reasons = [
        (family not in FUSABLE_ARCHITECTURES,
         f"architecture={cfg.architecture.name}: packs fuse {', '.join(FUSABLE_ARCHITECTURES)}"),
        (str(t.strategy) not in ("auto", "single_device") or str(t.devices) not in ("1", "auto"),
         f"trainer.strategy={t.strategy}, trainer.devices={t.devices}: a pack trains on one device"),
        (str(t.precision) not in PRECISIONS,
         f"trainer.precision={t.precision}: a gradient scaler would skip every member's step when one member's "
         f"gradients overflow"),
        (cfg.norm.name == "weight", "norm=weight: its weights are computed by parametrizations, which are not stacked"),
        (cfg.scheduler.name == "plateau",
         "scheduler=plateau: it lowers the rate on one run's own validation metric, and a pack has one rate"),
        (bool(cfg.diagnostics.enabled), "diagnostics=on: per-layer diagnostics hook the layers of one model"),
        (cfg.averaging.name == "swa" and cfg.norm.name == "batch",
         "averaging=swa with norm=batch: SWA recomputes batch-norm statistics module by module (torch's update_bn), "
         "which does not reach a pack's stacked statistics"),
        (cfg.averaging.name != "none" and cfg.callbacks.early_stopping.enabled,
         f"averaging={cfg.averaging.name} with early stopping: a stopped member's average would go on taking in "
         f"its frozen weights"),
        (cfg.data.val_fraction == 0 and cfg.callbacks.early_stopping.enabled,
         "early stopping without a validation split"),
    ]
    return next((why for failed, why in reasons if failed), None)


def pack_key(cfg: DictConfig) -> str:
    """The config without the keys members may differ in (and Hydra's own): equal keys, same pack."""
    plain: dict[str, Any] = OmegaConf.to_container(cfg, resolve=False)
    return json.dumps({k: v for k, v in plain.items() if k not in (*MEMBER_KEYS, "hydra")}, sort_keys=True,
                      default=str)


def plan_packs(configs: Sequence[DictConfig], size: int) -> tuple[list[list[int]], dict[int, str]]:
    """Group jobs (by index into ``configs``) into packs of at most ``size``, in their order; jobs that cannot
    fuse, or find no partner, stay alone. Returns the groups (a group of one runs unfused) and why each job that
    cannot fuse does not."""
    alone: dict[int, str] = {}
    by_key: dict[str, list[int]] = {}
    for i, cfg in enumerate(configs):
        why = why_not_fused(cfg)
        if why is not None:
            alone[i] = why
        else:
            by_key.setdefault(pack_key(cfg), []).append(i)
    groups = [members[start:start + size] for members in by_key.values() for start in range(0, len(members), size)]
    groups += [[i] for i in alone]
    return sorted(groups), alone
