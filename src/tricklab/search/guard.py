"""What a search checks before it creates or touches anything: its enqueued configs, the storage URL, the folder
it continues (a search's, not a grid sweep's), that folder's ``search.json`` and journal, and the study it
would continue (its name, direction and search space those of this search).

A study that only looks like ours would be continued silently: a foreign study maximised the wrong way, or one
sampled from another space, mixes trials that cannot be compared and steers the sampler with them. So every
mismatch is one paragraph naming what differs, exit 2, before the sweep folder, the journal or any trial exists.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tricklab.errors import ConfigError, DataError
from tricklab.search.space import SearchSpace, format_value

SEARCH_ATTR = "tricklab_search"  # the study's user attribute: the space and fixed overrides it was started with
STORAGE_SCHEMES = "sqlite:///<file>, postgresql://..., mysql://... (any SQLAlchemy URL with its driver installed)"
# What a grid sweep leaves in its folder, and what a search leaves in its own (beside sweep.json, both have).
GRID_MARKS = ("multirun.yaml",)
SEARCH_MARKS = ("search.json", "optuna.journal")


def storage_problem(storage: Any) -> str | None:
    """Why ``hydra.sweeper.storage`` cannot be a study's storage (None: it can, or it is null = the journal)."""
    if storage is None:
        return None
    allowed = (f"hydra.sweeper.storage must be null (the journal optuna.journal in the sweep folder) or "
               f"{STORAGE_SCHEMES}")
    if not isinstance(storage, str) or not storage.strip():
        return f"hydra.sweeper.storage={storage!r} is not allowed; {allowed}."
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(storage)
    except ArgumentError:
        return f"hydra.sweeper.storage={storage} is not a storage URL; {allowed}."
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        return (f"hydra.sweeper.storage={storage}: {url.drivername}:// is not a storage scheme Optuna can use; "
                f"{allowed}.")
    try:
        dialect.import_dbapi()
    except ImportError as err:
        return (f"hydra.sweeper.storage={storage} needs the database driver of {url.drivername}, which is not "
                f"installed ({err}); install it, or use null or sqlite:///<file>.")
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            return (f"hydra.sweeper.storage={storage} is a database in memory, which the trials' processes cannot "
                    f"see; {allowed}.")
        folder = Path(database).expanduser().absolute().parent
        if not folder.is_dir():
            return (f"hydra.sweeper.storage={storage}: the folder {folder} of its database does not exist; "
                    f"{allowed}, in a folder that exists.")
        if Path(database).is_dir():
            return f"hydra.sweeper.storage={storage}: {database} is a folder, not a database file; {allowed}."
    return None


def enqueue_problems(enqueue: Any, space: SearchSpace, check: Callable[[list[str]], None]) -> list[str]:
    """Every ``hydra.sweeper.enqueue`` entry that would not run as given: not a mapping, a key the search does not
    search (Optuna would drop it silently), a value outside its parameter's range, or a config tricklab refuses
    (it would only fail once the sweep folder and the study exist)."""
    params = list(space.distributions)
    allowed = (f"each entry of hydra.sweeper.enqueue must map searched parameters ({', '.join(params) or 'none'}) "
               f"to values within their ranges")
    if not isinstance(enqueue, (list, tuple)):
        return [f"hydra.sweeper.enqueue={enqueue!r} is not allowed; it must be a list, e.g. "
                f"[{{optimizer.lr: 0.001}}]: {allowed}."]
    found = []
    for i, entry in enumerate(enqueue):
        where = f"hydra.sweeper.enqueue[{i}]={_show(entry)}"
        if not isinstance(entry, Mapping) or not entry:
            found.append(f"{where} is not allowed: it is not a mapping of parameters to values; {allowed}.")
            continue
        if unknown := [str(k) for k in entry if k not in space.distributions]:
            found.append(f"{where} is not allowed: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not "
                         f"searched by this search, and Optuna would drop {'it' if len(unknown) == 1 else 'them'} "
                         f"silently; {allowed} (a fixed value goes on the command line).")
            continue
        outside = [f"{k}={format_value(v)} (the range is {space.specs[k]})" for k, v in entry.items()
                   if not _within(space.distributions[k], v)]
        if outside:
            found.append(f"{where} is not allowed: {'; '.join(outside)} is outside its parameter's range; {allowed}.")
            continue
        try:
            check([*space.fixed, *(f"{k}={format_value(v)}" for k, v in entry.items())])
        except ConfigError as err:
            found.append(f"{where} is not allowed: its config fails tricklab's checks: {err}")
    return found


def _within(distribution: Any, value: Any) -> bool:
    """``value`` is one ``distribution`` can take (a choice of a categorical, a number in range on its step)."""
    from optuna.distributions import CategoricalDistribution

    if isinstance(distribution, CategoricalDistribution):
        return any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in distribution.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return distribution._contains(distribution.to_internal_repr(value))
    except (ValueError, TypeError):
        return False


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def existing_folder(config: Any) -> Path | None:
    """The sweep folder of ``config`` when it exists already (``resume=``, or ``hydra.sweep.dir`` naming one); None
    for a new one, which is not resolved here (resolving the default folder creates it)."""
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(config.hydra.sweep, resolve=False).get("dir")
    if config.get("resume") is None and "tricklab_sweep_dir" in str(raw):
        return None
    path = Path(str(config.hydra.sweep.dir))
    return path if path.is_dir() else None


def unwritable_folder_problem(sweep_dir: Path) -> str | None:
    """An existing sweep folder no file can be created in (read-only, immutable): refused before anything in it is
    rewritten (multirun.yaml, sweep.json, search.json)."""
    from tricklab.folders import cannot_write_in

    if why := cannot_write_in(sweep_dir):
        return (f"{sweep_dir} cannot be continued: no file can be created in it ({why}); a sweep writes its record "
                f"(multirun.yaml, sweep.json, a search's journal) and its jobs there. Nothing was changed: make it "
                f"writable, or copy it elsewhere and continue the copy.")
    return None


def folder_kind(sweep_dir: Path) -> str | None:
    """``search`` for a search's folder, ``grid`` for a grid sweep's (or a study's), None for neither."""
    if any((sweep_dir / mark).exists() for mark in SEARCH_MARKS):
        return "search"
    if any((sweep_dir / mark).exists() for mark in (*GRID_MARKS, "sweep.json")):
        return "grid"
    return None


def grid_into_search_problem(sweep_dir: Path) -> str | None:
    """A grid sweep (``-m`` without a search) about to write into a search's folder."""
    if folder_kind(sweep_dir) != "search":
        return None
    command = ""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        command = json.loads((sweep_dir / "search.json").read_text()).get("command", "")
    again = f" ({command} resume={sweep_dir})" if command else ""
    marks = ", ".join(m for m in SEARCH_MARKS if (sweep_dir / m).exists())
    return (f"{sweep_dir} is the folder of a search (it holds {marks}), and this is a grid sweep: its jobs would "
            f"land among the trials and its multirun.yaml over the search's record. Nothing was changed. Continue "
            f"the search with its own command and resume={sweep_dir}{again}, or "
            f"run the grid in a new folder (without resume= or hydra.sweep.dir).")


def search_into_grid_problem(sweep_dir: Path) -> str | None:
    """A search about to continue in a folder that is not a search's (a grid sweep's, a study's)."""
    if folder_kind(sweep_dir) != "grid":
        return None
    marks = [m for m in (*GRID_MARKS, "sweep.json") if (sweep_dir / m).exists()]
    return (f"{sweep_dir} is the folder of a grid sweep (it holds {', '.join(marks)} and no search.json or "
            f"optuna.journal), and this is a search (hparams_search): its trials would land among the sweep's jobs "
            f"and be counted with them. Nothing was changed. Resume that sweep without hparams_search, or start the "
            f"search in a new folder (without resume= or hydra.sweep.dir).")


def read_search_file(sweep_dir: Path) -> dict[str, Any] | None:
    """A search folder's ``search.json`` (None when it has none); DataError for one that cannot be read."""
    path = Path(sweep_dir) / "search.json"
    if not path.exists():
        return None
    why = None
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        why = f"{type(err).__name__}: {err}"
    else:
        needed = ("study_name", "storage", "params", "fixed")
        if not isinstance(info, dict) or any(k not in info for k in needed):
            why = f"it is not the record the search writes (an object with {', '.join(needed)})"
        elif not isinstance(info["params"], dict) or not isinstance(info["fixed"], list):
            why = "its params are not a mapping or its fixed overrides not a list"
    if why:
        raise DataError(f"{path} cannot be read ({why}); it says where the search's study is and what it searched. "
                        f"Nothing was changed. Restore it from a copy; without it the folder cannot be reported "
                        f"or continued as a search.")
    return info


def journal_problem(path: Path) -> str | None:
    """Why the journal at ``path`` cannot be the study's (missing, a folder, unreadable, cut short, not Optuna's
    records); None when every line is a complete record. Read only: nothing is written, no lock taken."""
    if not path.exists():
        return "it does not exist"
    if path.is_dir():
        return "it is a folder, not a file"
    try:
        data = path.read_bytes()
    except OSError as err:
        return f"it cannot be read ({err.strerror})"
    if not data.strip():
        return "it is empty (it holds no study)"
    if not data.endswith(b"\n"):
        return ("its last line is cut short (a full disk or a kill mid-write): Optuna would drop that record "
                "silently and append after the broken line")
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            return f"line {number} is not a JSON record"
        if not isinstance(record, dict) or "op_code" not in record:
            return f"line {number} is not a record of an Optuna journal (no op_code)"
    return None


def journal_error(path: Path, why: str) -> str:
    """The paragraph for a study journal that cannot be used."""
    return (f"{path} cannot be used as the search's study: {why}. It must be the journal Optuna writes (one JSON "
            f"record a line, each line complete). Nothing was changed. Restore it from a copy; the trial folders "
            f"keep each trial's run, but without its journal the search cannot be reported or continued.")


def open_storage(settings: Any, sweep_dir: Path | None) -> Any:
    """The study's storage as the search will use it, for reading; DataError when it cannot be opened."""
    import optuna

    try:
        return optuna.storages.get_storage(settings.storage_url(sweep_dir))
    except Exception as err:  # SQLAlchemy's errors, a journal Optuna cannot replay: what the storage says is the cause
        target = settings.storage or Path(sweep_dir) / "optuna.journal"
        raise DataError(f"hydra.sweeper.storage: {target} cannot be opened ({type(err).__name__}: "
                        f"{str(err).splitlines()[0]}); nothing was changed. Give a storage Optuna can open "
                        f"({STORAGE_SCHEMES}), or null for the journal in the sweep folder.") from None


def study_problems(storage: Any, settings: Any, space: SearchSpace, info: dict[str, Any] | None,
                   where: str) -> list[str]:
    """Why the study ``settings.study_name`` in ``storage`` is not this search's to continue: another direction,
    several objectives, trials sampled from another space, other fixed overrides (from its record or
    ``search.json``'s ``info``); empty when there is no such study yet, or it matches. ``where``: how to name the
    storage in the message."""
    import optuna

    name = settings.study_name
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        if info is not None:
            return [f"{where} holds no study named {name}, which this folder's search.json says the search's trials "
                    f"are in; nothing was changed. Give the storage and study_name it was started with."]
        return []
    head = f"{where} already holds a study named {name}"
    directions = storage.get_study_directions(study_id)
    if directions != [optuna.study.StudyDirection.MAXIMIZE]:
        shown = ", ".join(d.name.lower() for d in directions)
        return [f"{head}, which {'minimizes' if shown == 'minimize' else 'optimizes ' + shown} its objective; a "
                f"tricklab search maximizes the best validation accuracy, so continuing it would invert the search "
                f"(or mix objectives). Nothing was changed. Choose another hydra.sweeper.study_name or storage."]
    record = storage.get_study_user_attrs(study_id).get(SEARCH_ATTR) or {}
    wanted = {key: _dist_json(d) for key, d in space.distributions.items()}
    found = []
    earlier = record.get("params") or (_parsed_specs(info["params"]) if info else None)
    if earlier is None:  # a study tricklab did not start: its trials say what it searched
        spaces = {json.dumps(sorted((k, _dist_json(d)) for k, d in t.distributions.items()))
                  for t in storage.get_all_trials(study_id, deepcopy=False) if t.distributions}
        earlier = dict(json.loads(next(iter(spaces)))) if len(spaces) == 1 else ({} if not spaces else None)
        if earlier is None:
            found.append(f"{head} whose trials were sampled from several search spaces, not this search's "
                         f"({_listed(wanted)}).")
    if earlier and earlier != wanted:
        found.append(f"{head} sampled from another search space: {_space_changes(earlier, wanted)}; continuing it "
                     f"would mix trials that cannot be compared.")
    fixed = record.get("fixed", info.get("fixed") if info else None)
    if fixed is not None and _task_fixed(fixed) != _task_fixed(space.fixed):
        old, new = _task_fixed(fixed), _task_fixed(space.fixed)
        changes = ", ".join(f"{key} {old.get(key, '(not set)')} → {new.get(key, '(not set)')}"
                            for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key))
        found.append(f"{head} whose trials were trained with other fixed overrides ({changes}); its trials' values "
                     f"would not measure the same thing as the new ones'.")
    seeds = record.get("seeds_per_trial", info.get("seeds_per_trial") if info else None)
    if seeds is not None and seeds != settings.seeds_per_trial:
        found.append(f"{head} whose trials each ran hydra.sweeper.seeds_per_trial={seeds} seeds, and this search "
                     f"gives {settings.seeds_per_trial}: its values and trial folders would mean something else.")
    if found:
        found[-1] += (" Nothing was changed. Give the search its earlier settings to continue it, or another "
                      "hydra.sweeper.study_name or storage (or a new folder) for a new search.")
    return found


def record_problems(info: dict[str, Any], settings: Any, sweep_dir: Path) -> list[str]:
    """The study name and storage a search folder's ``search.json`` names, against this search's settings."""
    changed = [f"hydra.sweeper.{key}={getattr(settings, key)} (search.json: {info.get(key)})"
               for key in ("study_name", "storage") if info.get(key) != getattr(settings, key)]
    if not changed:
        return []
    return [f"{sweep_dir} holds a search whose study is {info.get('study_name')} in "
            f"{info.get('storage') or 'its optuna.journal'}, and this search names another: {', '.join(changed)}; "
            f"its trials would go to another study while the folder's record points to the first. Nothing was "
            f"changed. Give the study_name and storage it was started with, or start a new search in a new folder."]


def remember_search(study: Any, settings: Any, space: SearchSpace) -> None:
    """Keep what the study searches in the study itself (a storage outside the folder is checked against it)."""
    if SEARCH_ATTR in study.user_attrs:
        return
    study.set_user_attr(SEARCH_ATTR, {"params": {k: _dist_json(d) for k, d in space.distributions.items()},
                                      "specs": dict(space.specs), "fixed": list(space.fixed),
                                      "seeds_per_trial": settings.seeds_per_trial})


def _dist_json(distribution: Any) -> Any:
    from optuna.distributions import distribution_to_json

    return json.loads(distribution_to_json(distribution))


def _parsed_specs(specs: dict[str, str]) -> dict[str, Any] | None:
    from tricklab.search.space import parse_space

    try:
        return {k: _dist_json(d) for k, d in parse_space(specs, []).distributions.items()}
    except ConfigError:
        return None


def _task_fixed(fixed: list[str]) -> dict[str, str]:
    """The fixed overrides that change what a trial trains (not where it writes or how it is shown): key -> the
    value the last one gives it."""
    from tricklab.config import PLUMBING

    def plumbing(line: str) -> bool:
        key = line.lstrip("+~").split("=", 1)[0]
        return any(key == p or key.startswith(f"{p}.") or key.startswith(f"{p}/") for p in PLUMBING)

    return {line.split("=", 1)[0]: line.split("=", 1)[-1] for line in fixed if not plumbing(line)}


def _describe(dist: dict[str, Any]) -> str:
    attrs = dist.get("attributes", {})
    if dist.get("name") == "CategoricalDistribution":
        return f"choice({', '.join(format_value(c) for c in attrs.get('choices', []))})"
    core = f"interval({attrs.get('low')}, {attrs.get('high')})"
    core = f"int({core})" if dist.get("name") == "IntDistribution" else core
    return f"tag(log, {core})" if attrs.get("log") else core


def _listed(space: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_describe(d)}" for k, d in space.items()) or "no parameters"


def _space_changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    parts = []
    for key in [*old, *(k for k in new if k not in old)]:
        if key not in new:
            parts.append(f"{key}={_describe(old[key])} is not searched now")
        elif key not in old:
            parts.append(f"{key}={_describe(new[key])} was not searched then")
        elif old[key] != new[key]:
            parts.append(f"{key} was {_describe(old[key])}, now {_describe(new[key])}")
    return "; ".join(parts)
