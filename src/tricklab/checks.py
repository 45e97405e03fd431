"""Every check a sweep's jobs pass before the sweep creates anything: group choices, keys, values, cross-checks
and the dataset's files per job, that no two jobs share a folder, and that a resumed job cut short keeps its
config.

Each job is composed as Hydra will run it (``load_sweep_config``); the problems of all jobs are collected,
each told once (a bad value shared by every job is one paragraph, not one per job).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from tricklab.config import problems
from tricklab.data.files import data_problems
from tricklab.keys import choice_problems, group_choices, key_problems
from tricklab.launch.naming import folder_clash


def sweep_problems(config_loader, master: DictConfig, jobs: Sequence[Sequence[str]]) -> list[str]:
    """The problems of every job of a sweep (``jobs``: each job's overrides), in job order, each once."""
    parser = OverridesParser.create(config_loader=config_loader)
    bases: dict[tuple[str, ...], DictConfig] = {}  # the config of each combination of group choices
    found: dict[str, None] = {}
    folders: list[tuple[list[str], Path]] = []  # each job's folder (below the sweep folder, not yet resolved)
    options = group_options(config_loader, master)
    for overrides in jobs:
        parsed = parser.parse_overrides(list(overrides))
        if wrong := choice_problems(parsed, options):  # a sweeper's params or arms may choose a config too
            found.update(dict.fromkeys(wrong))
            continue
        try:
            choices = tuple(group_choices(parsed))
            if choices not in bases:
                bases[choices] = config_loader.load_sweep_config(master, list(choices))
            job_problems = key_problems(bases[choices], parsed)
            if not job_problems:
                config = config_loader.load_sweep_config(master, list(overrides))
                data_dir = config.paths.data_dir  # not a string: problems() says so
                job_problems = problems(config) + (
                    data_problems(config.data, Path(data_dir)) if isinstance(data_dir, str) else [])
                folders.append((list(overrides), Path(str(config.hydra.sweep.subdir))))
                job_problems += resumed_job_problems(config)
        except (HydraException, OmegaConfBaseException) as err:  # what Hydra itself refuses (a wrong type...)
            job_problems = [f"{' '.join(overrides)}: {err}".replace("\n", " ")]
        found.update(dict.fromkeys(job_problems))
    clash = folder_clash(folders)
    return list(found) + ([clash] if clash else [])


def resumed_job_problems(config: DictConfig) -> list[str]:
    """In a resumed sweep (``resume=<sweep dir>``), a job cut short continues from its last.ckpt: with the config it
    started with (tricklab.run.resume). A new sweep's folder does not exist yet, and resolving it would create it."""
    from tricklab.run.resume import resume_problems

    if config.get("resume") is None:
        return []
    return resume_problems(Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir), config)


def group_options(config_loader, master: DictConfig) -> Callable[[str], list[str]]:
    """``options(group)``: a group's choices as the sweep's config loader lists them (with the search path the
    sweep's command line gave), each group read once."""
    config_name = master.hydra.job.config_name
    searchpath = [line for line in master.hydra.overrides.hydra if line.startswith("hydra.searchpath")]
    return functools.cache(
        lambda group: config_loader.get_group_options(group, config_name=config_name, overrides=searchpath))
