"""A run that continues from its last.ckpt must go on training the config it started with.

Checked before Hydra runs (a single run: tricklab.preflight; a sweep's jobs: tricklab.checks), because Hydra
writes the new config over the run folder's ``.hydra/config.yaml`` before tricklab's code sees it. The saved and
the new config are compared unresolved, less the plumbing (tricklab.config.PLUMBING: where a run writes and how
it is shown). A change to what the run trains is refused; one to how long it trains or how often it writes its
checkpoints is what resuming is for (train on to more epochs), and is named.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from tricklab.config import PLUMBING

SAVED_CONFIG = Path(".hydra") / "config.yaml"
# Keys a resume may change: how long the run trains and how often it writes, not what it trains.
MAY_CHANGE = ("trainer.max_epochs", "callbacks.checkpoint.every_seconds")
_ABSENT = "(not set)"


def resume_problems(run_dir: Path, config: DictConfig) -> list[str]:
    """A paragraph refusing ``config`` for the run in ``run_dir`` when that run would continue from its
    last.ckpt and ``config`` changes what it trains; the changes a resume may make are printed (stderr)."""
    from tricklab.train import interrupted_checkpoint

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
