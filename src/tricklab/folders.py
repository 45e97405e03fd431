"""Where a run or a sweep lives: a fresh, collision-proof folder for each new run or sweep, job folders named
from their overrides, and what a folder holds (a sweep's, a run's, one Hydra made and nothing used).

The folder names are OmegaConf resolvers (registered by ``tricklab.config.register_resolvers``) used in
tricklab/conf/hydra/default.yaml. Only the standard library is imported here: the resolvers are registered on every
start, ``--help`` included.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from tricklab.errors import ConfigError

# Longest job folder name kept as is; longer ones are cut and get a hash of the full name (NAME_MAX is 255).
MAX_DIRNAME = 120
# Characters an override may keep in a folder name; everything else (a "/" above all) is %-escaped.
SAFE_CHARS = "=,.-_+[]:@"
DEFAULT_JOB = "defaults"
# In a sweep folder: the W&B group of its jobs, written by its sweeper on the first launch (a resume keeps it).
GROUP_FILE = "wandb_group.txt"

_fresh_dirs: dict[str, str] = {}
_made_parents: dict[str, list[Path]] = {}  # base -> the folders above a new folder that creating it made


def sweep_dir(resume: str | None, base: str) -> str:
    """``resume`` when given (it must exist), else a new folder ``<base>/<date>_<time>_<6 hex>``.

    The new folder is created here with ``mkdir(exist_ok=False)``, retrying on a clash, so two sweeps started in
    the same second never share a folder. One process always gets the same folder for one ``base``.
    """
    if resume is not None:
        return _existing(resume)
    if base not in _fresh_dirs:
        _fresh_dirs[base] = create_sweep_dir(Path(base))
    return _fresh_dirs[base]


# What an earlier sweep leaves at the top of its folder (Hydra's record, tricklab's manifest, a search's study).
SWEEP_MARKS = ("multirun.yaml", "sweep.json", "search.json", "optuna.journal")
# What a single run (or one job of a sweep) leaves in its own folder.
RUN_MARKS = ("metrics.json", "history.csv", ".hydra")


def _existing(resume: str) -> str:
    """The folder of ``resume``, which must be an earlier sweep's: an empty value, the working directory or a run's
    folder would have the sweep write its jobs where they do not belong."""
    allowed = ("resume must be the folder of an earlier sweep (outputs/multirun/<date>_<time>_<suffix>), whose "
               "completed jobs are then skipped")
    if not resume.strip():
        raise ConfigError(f"resume='{resume}' is empty; {allowed}, or null for a new sweep.")
    path = Path(resume).expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(f"resume={resume} is not an existing folder; {allowed}.")
    if run := [m for m in RUN_MARKS if (path / m).exists()]:
        raise ConfigError(f"resume={resume} is the folder of a single run (it holds {run[0]}), not of a sweep; "
                          f"{allowed}.")
    if not any((path / m).exists() for m in SWEEP_MARKS):
        raise ConfigError(f"resume={resume} ({path}) holds no sweep (none of {', '.join(SWEEP_MARKS)}); {allowed}.")
    if why := cannot_write_in(path):
        raise ConfigError(f"resume={resume} cannot be continued: no file can be created in {path} ({why}); a resumed "
                          f"sweep writes its record (multirun.yaml, sweep.json) and its jobs there, so the folder must "
                          f"be one tricklab can write in. Nothing was changed: make it writable (or copy it elsewhere "
                          f"and resume the copy).")
    return str(path)


def cannot_write_in(folder: Path) -> str | None:
    """Why no file can be created in the existing ``folder`` (a read-only mount, an immutable folder, no
    permission: asked of the file system by creating and removing a temporary file, since permissions alone say
    nothing for root); None when one can."""
    import os
    import tempfile

    try:
        handle, name = tempfile.mkstemp(prefix=".tricklab-check-", dir=folder)
    except OSError as err:
        return err.strerror or type(err).__name__
    os.close(handle)
    os.unlink(name)
    return None


def create_sweep_dir(base: Path) -> str:
    """A new folder `<base>/<date>_<time>_<6 hex>`, created with mkdir(exist_ok=False), retrying on a clash."""
    _made_parents[str(base)] = [p for p in (base, *base.parents) if not p.exists()]  # deepest first
    base.mkdir(parents=True, exist_ok=True)
    while True:
        path = base / f"{datetime.now():%Y-%m-%d_%H-%M-%S}_{secrets.token_hex(3)}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return str(path)


def discard_if_unused(run_dir: Path) -> bool:
    """Remove ``run_dir`` when this process created it (``sweep_dir``: a single run's new folder) and it holds
    only what Hydra writes into every run's folder (``.hydra/`` and an empty log), so that a run refused as it
    starts (its download failed, its GPUs are missing) leaves no folder behind. True when removed."""
    base = next((b for b, d in _fresh_dirs.items() if Path(d).resolve() == run_dir.resolve()), None)
    if base is None:
        return False  # a folder given on the command line, or a sweep's job folder: not ours to remove
    if not all(_hydra_own(entry) for entry in run_dir.iterdir()):
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    for parent in _made_parents.get(base, []):  # outputs/runs, when this run made it: rmdir keeps any in use
        try:
            parent.rmdir()
        except OSError:
            break
    return True


def _hydra_own(entry: Path) -> bool:
    """``entry`` of a run folder is one Hydra writes at every start: ``.hydra/``, or the job's log still empty."""
    if entry.name == ".hydra":
        return entry.is_dir()
    return entry.suffix == ".log" and entry.is_file() and entry.stat().st_size == 0


def job_dirname(override_dirname: str) -> str:
    """The folder of a job: its overrides (``init=he,norm=batch,seed=0``), %-escaped, hashed when very long.

    The same overrides always give the same name, so re-running a sweep command finds each job's folder again.
    """
    if not override_dirname:
        return DEFAULT_JOB
    name = quote(override_dirname, safe=SAFE_CHARS)
    if len(name) <= MAX_DIRNAME:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:12]
    return f"{name[: MAX_DIRNAME - 13]}~{digest}"


def sweep_group(sweep_dir: Path) -> str:
    """The W&B group of a job in ``sweep_dir``: what its sweeper wrote (``keep_group``), else the folder's name
    (a sweep by another sweeper than tricklab's)."""
    path = Path(sweep_dir) / GROUP_FILE
    kept = path.read_text().strip() if path.is_file() else ""
    return kept or Path(sweep_dir).name
