"""Checks of the command line that must pass before Hydra runs, because Hydra acts on it first.

Hydra creates the run or sweep folder, writes ``.hydra/`` into it and refuses unknown keys with advice to add
a ``+`` (or takes a ``+typo`` silently) before tricklab's code sees the config; an unknown group choice gets
Hydra's 16-line message. So ``python train.py`` first reads the command line as Hydra will and checks every
config a group override chooses (in a sweep, every value; tricklab.keys), then, all at once: every key an
override names (tricklab.keys), every value of a single run (tricklab.config) and that its dataset is there
(tricklab.data.files), that the output folders can be created and written, and that a single run does not
overwrite a finished one, nor continue a run cut short with another config.
Any problem: one paragraph each, exit 2, nothing created. What passes is left to Hydra unchanged.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from tricklab.config import CONF_DIR
from tricklab.errors import exit_on_user_error
from tricklab.keys import choice_problems, group_choices, key_problems

# Flags after which Hydra runs nothing: there is nothing to check.
INFO_FLAGS = ("help", "hydra_help", "info", "shell_completion")


def preflight(argv: Sequence[str]) -> None:
    """Check the command line ``argv`` (without the script); exit 2 listing every problem."""
    from tricklab.internals import hydra_args_parser

    args, _ = hydra_args_parser().parse_known_args(list(argv))
    if any(getattr(args, flag, None) for flag in INFO_FLAGS):
        return
    try:
        overrides = OverridesParser.create().parse_overrides(list(args.overrides))
        if found := choice_problems(overrides, group_options(overrides)):
            exit_on_user_error("\n".join(found))  # without every choice there is no config to check further
        base = _compose(group_choices(overrides))
    except (HydraException, OmegaConfBaseException):
        return  # a syntax error: Hydra reports it itself, in one paragraph
    multirun = (bool(args.multirun) or str(base.hydra.mode) == "RunMode.MULTIRUN"
                or _given(overrides, "hydra.mode") == "MULTIRUN")
    found = key_problems(base, overrides) + launcher_key_problems(base, overrides)
    if not multirun and not found:  # a sweep's values are the grid sweeper's to check, job by job
        found += _value_problems(list(args.overrides))
    found += path_problems(base, overrides, multirun)
    if not multirun:
        found += (overwrite_problems(overrides) + single_resume_problems(overrides)
                  + resumed_config_problems(list(args.overrides), overrides))
    if found:
        exit_on_user_error("\n".join(found))


def _value_problems(overrides: list[str]) -> list[str]:
    """The value checks of the run's whole config (tricklab.config) and that its dataset is there (or will be
    downloaded), now rather than after Hydra made the run folder."""
    from tricklab.config import problems
    from tricklab.data.files import data_problems

    try:
        cfg = _compose(overrides)
        data_dir = cfg.paths.data_dir  # not a string: problems() says so, and there is no folder to look in
        return problems(cfg) + (data_problems(cfg.data, Path(data_dir)) if isinstance(data_dir, str) else [])
    except (HydraException, OmegaConfBaseException):
        return []  # a value of the wrong type for its key: Hydra says so itself


def group_options(overrides: Sequence[Override]) -> Callable[[str], list[str]]:
    """``options(group)``: the choices of a config group as Hydra lists them (tricklab/conf/, Hydra's own and the
    plugins' configs, and any folder a ``hydra.searchpath`` override adds), each group read once."""
    searchpath = [o.input_line for o in overrides if o.key_or_group == "hydra.searchpath"]

    @functools.cache
    def options(group: str) -> list[str]:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            loader = GlobalHydra.instance().config_loader()
            return loader.get_group_options(group, config_name="config", overrides=searchpath)

    return options


def _compose(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


def launcher_key_problems(base: DictConfig, overrides: Sequence[Override]) -> list[str]:
    """A ``hydra.launcher.<key>`` the chosen launcher lacks: Hydra would advise ``+hydra.launcher.<key>``, which
    then fails with a TypeError from the launcher's constructor (``fuse`` on the basic launcher)."""
    named = [o for o in overrides if o.key_or_group.startswith("hydra.launcher.") and not o.is_delete()]
    if not named:
        return []
    choice = [o.input_line for o in overrides if o.key_or_group == "hydra/launcher" and not o.is_sweep_override()]
    # an experiment may choose the launcher too: compose the launcher choice over the other group choices
    cfg = _compose([*group_choices(overrides), *choice[-1:]]) if choice else base
    launcher = cfg.hydra.runtime.choices.get("hydra/launcher") or "basic"
    hint = (" workers, gpus, fuse and jobs_per_gpu are the local launcher's: add hydra/launcher=local."
            if launcher != "local" else "")
    keys = [str(k) for k in cfg.hydra.launcher if not str(k).startswith("_")]
    return [f"{o.input_line}: {o.key_or_group} is not a setting of the {launcher} launcher "
            f"(hydra/launcher={launcher}); its settings are: {', '.join(keys) or 'none'}.{hint}"
            for o in named if o.key_or_group.split(".")[2] not in keys]


def _given(overrides: Sequence[Override], key: str) -> Any:
    """The value a single (not swept) override gives ``key``; None when none does."""
    for override in reversed(overrides):
        if override.key_or_group == key and not override.is_sweep_override() and not override.is_delete():
            return override.value()
    return None


def path_problems(base: DictConfig, overrides: Sequence[Override], multirun: bool) -> list[str]:
    """The output folders this command would create, each checked (``paths.output_dir``, the run or sweep
    folder when given, and ``paths.data_dir`` where the dataset is generated or downloaded into it);
    interpolated values are left to Hydra."""
    output_dir = _given(overrides, "paths.output_dir") or base.paths.output_dir
    folders = {"paths.output_dir": output_dir}
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    if _given(overrides, key) is not None:
        folders[key] = _given(overrides, key)
    if _writes_data(base, overrides):
        folders["paths.data_dir"] = _given(overrides, "paths.data_dir") or base.paths.data_dir
    found = []
    for key, value in folders.items():
        if isinstance(value, str) and "${" not in value and (why := unwritable(Path(value))):
            what = "datasets are written below it" if key == "paths.data_dir" else "run outputs go below it"
            found.append(f"{key}={value} cannot be used: {why}; {key} must be a folder tricklab can create and "
                         f"write in ({what}).")
    return found


# Datasets tricklab makes itself and caches in paths.data_dir (the others are read, or downloaded on request).
GENERATED = ("mnist1d",)


def _writes_data(base: DictConfig, overrides: Sequence[Override]) -> bool:
    """Whether the run writes into ``paths.data_dir``: a generated dataset, or a download (data.download=true
    and no data.root)."""
    name = base.data.get("name") if "data" in base else None
    download = _given(overrides, "data.download")
    download = base.data.get("download") if download is None and "data" in base else download
    root = _given(overrides, "data.root") or (base.data.get("root") if "data" in base else None)
    return name in GENERATED or (download is True and not root)


def unwritable(path: Path) -> str | None:
    """Why a folder cannot be made at ``path`` and written in (None: it can). Tries a temporary folder in the
    deepest part that exists, and removes it: permissions alone say nothing about /proc, read-only mounts or
    root."""
    path = path.expanduser().absolute()
    if why := _too_long(path):
        return why
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        return (f"{existing} is a file, not a folder" if existing == path
                else f"{existing} is a file, so no folder can be made below it")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".tricklab-check-", dir=existing))
    except OSError as err:
        return f"no folder can be created in {existing} ({err.strerror})"
    return None


def _too_long(path: Path) -> str | None:
    """A name in ``path`` longer than the file system allows (asking whether it exists would raise)."""
    limit, path_limit = _name_limits()
    if long := [part for part in path.parts if len(os.fsencode(part)) > limit]:
        return f"the name {long[0][:40]}... is {len(os.fsencode(long[0]))} bytes long, over the file system's {limit}"
    if len(os.fsencode(str(path))) >= path_limit:
        return f"the path is {len(os.fsencode(str(path)))} bytes long, over the file system's {path_limit}"
    return None


def _name_limits() -> tuple[int, int]:
    """(the longest file name, the longest path) the root file system allows; 255 and 4096 where unknown."""
    try:
        return os.pathconf("/", "PC_NAME_MAX"), os.pathconf("/", "PC_PATH_MAX")
    except (OSError, ValueError):
        return 255, 4096


def single_resume_problems(overrides: Sequence[Override]) -> list[str]:
    """``resume=`` names a sweep folder; a single run would ignore it (silently training anew elsewhere)."""
    resume = _given(overrides, "resume")
    if resume is None:
        return []
    return [f"resume={resume} resumes a sweep, and this is a single run (no -m), which would ignore it; add -m "
            f"(with the sweep's overrides) to resume that sweep, or give a single run cut short its folder again "
            f"(hydra.run.dir=<run folder>) to resume it, without resume=."]


def overwrite_problems(overrides: Sequence[Override]) -> list[str]:
    """A single run given the folder of a finished run (``hydra.run.dir``) would replace its results: refused
    unless ``overwrite=true``. A run cut short in that folder resumes; a failed one runs again."""
    from tricklab.run.status import DONE, job_status

    run_dir = _given(overrides, "hydra.run.dir")
    if run_dir is None or _given(overrides, "overwrite") is True:
        return []
    status = job_status(Path(str(run_dir)))
    if status not in DONE:  # failed and cut-short runs are run again or resumed
        return []
    return [f"hydra.run.dir={run_dir} holds a {status} run; running again would replace its metrics.json, "
            f"history.csv and checkpoints. Add overwrite=true to train it again from the start there, or choose "
            f"another hydra.run.dir (a run cut short there would resume instead)."]


def resumed_config_problems(lines: list[str], overrides: Sequence[Override]) -> list[str]:
    """A single run given the folder of a run cut short (``hydra.run.dir``) continues it: with the config it
    started with (tricklab.run.resume), checked now, before Hydra writes the new config over the saved one."""
    from tricklab.run.resume import resume_problems

    run_dir = _given(overrides, "hydra.run.dir")
    if run_dir is None:
        return []
    try:
        return resume_problems(Path(str(run_dir)), _compose(lines))
    except (HydraException, OmegaConfBaseException):
        return []  # a value of the wrong type for its key: Hydra says so itself
