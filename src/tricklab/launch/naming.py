"""How a sweep's jobs are told apart: the W&B group its jobs share, named for what the sweep varies, and the
check that no two jobs map to one folder (the folders themselves: tricklab.folders)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from tricklab.folders import GROUP_FILE

# Longest label (the experiment or the swept keys) in a group name before keys are left out.
MAX_GROUP_LABEL = 48


def folder_clash(jobs: list[tuple[list[str], Path]]) -> str | None:
    """The message for two jobs (overrides, folder) mapped to one folder, which would overwrite each other."""
    seen: dict[Path, list[str]] = {}
    for overrides, folder in jobs:
        if folder in seen:
            return (
                f"the jobs {' '.join(seen[folder])} and {' '.join(overrides)} would share the folder {folder}: "
                f"job folders are named from the overrides, leaving out paths.*, logger and callbacks.progress_bar "
                f"(hydra.job.config.override_dirname.exclude_keys); sweep only over values that name a job, and "
                f"give each value once."
            )
        seen[folder] = overrides
    return None


def group_name(label: str, sweep_dir: Path) -> str:
    """``<label>-<hex>``: the sweep's label (its experiment, or the keys it sweeps) and the hex that tells the
    folder apart (the 6 hex of ``<date>_<time>_<6 hex>``, a study folder's 8 hex, else 6 hex of its path)."""
    name = Path(sweep_dir).name
    found = re.fullmatch(r"(?:.*_)?([0-9a-f]{6,})", name)
    tail = found.group(1) if found else hashlib.sha1(str(Path(sweep_dir).resolve()).encode()).hexdigest()[:6]
    return f"{label}-{tail}"


def swept_label(keys: list[str]) -> str:
    """The keys a sweep varies joined by ``+`` (``init+norm``), cut to whole keys with ``+N`` for the rest when
    long; ``seed`` only when nothing else varies (seeds repeat a config, as in the report); ``sweep`` for none."""
    factors = [k for k in keys if k != "seed"] or list(keys)
    label = ""
    for i, key in enumerate(factors):
        if label and len(label) + len(key) + 1 > MAX_GROUP_LABEL:
            return f"{label}+{len(factors) - i}"
        label = f"{label}+{key}" if label else key
    return label or "sweep"


def keep_group(sweep_dir: Path, label: str) -> str:
    """The W&B group of the sweep in ``sweep_dir``: the one an earlier launch wrote into its GROUP_FILE (a resumed
    sweep stays in its group), else ``group_name(label, sweep_dir)``, written there now."""
    path = Path(sweep_dir) / GROUP_FILE
    if path.is_file() and (kept := path.read_text().strip()):
        return kept
    group = group_name(label, sweep_dir)
    path.write_text(group + "\n")
    return group


def varying_keys(job_overrides: list[list[str]]) -> list[str]:
    """The override keys whose values differ between the jobs of a sweep, in command-line order."""
    values: dict[str, set[str]] = {}
    for overrides in job_overrides:
        for override in overrides:
            key, _, value = override.lstrip("+~").partition("=")
            values.setdefault(key, set()).add(value)
    counts = {key: sum(any(o.lstrip("+~").partition("=")[0] == key for o in job) for job in job_overrides)
              for key in values}
    return [key for key, seen in values.items() if len(seen) > 1 or counts[key] < len(job_overrides)]


def sweep_label(experiment: str | None, swept: list[str]) -> str:
    """What a sweep's W&B group is named for: its experiment when all its jobs share one, else its swept keys."""
    return experiment if experiment and "experiment" not in swept else swept_label(swept)
