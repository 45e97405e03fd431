"""What every run leaves behind: ``metrics.json`` (written atomically) and the closing results table."""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
LAYERS_FILE = "layers.csv"  # per-layer diagnostics, when diagnostics=on
PREDICTIONS_FILE = "test_predictions.npz"  # test-set probabilities and labels, for ensembles
STUDY_RUN_FILE = "study.json"  # in a study's folder: the command that ran it, its commit and wall time
# How a run ended, as metrics.json says; "running" until then (or for good, if the process was killed).
# "pruned": a search trial stopped early by its pruner (a result of the search, never taken for completed).
FINAL_STATUSES = ("completed", "diverged", "failed", "interrupted", "pruned")


def timestamp() -> str:
    """Now, in ISO 8601: local time to the millisecond, with its offset from UTC."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


@contextlib.contextmanager
def replaced_whole(path: Path | str, tmp: Path | str | None = None, rename: bool = True) -> Iterator[Path]:
    """Yield a temp file beside ``path`` (``tmp``, by default ``<path>.tmp``) to write; then rename it over
    ``path`` (unless ``rename`` is false: a process that writes nothing). Readers never see half a file, and a
    failure mid-write (a full disk, a kill) leaves the file there before whole and no temp file behind."""
    tmp = Path(tmp if tmp is not None else f"{path}.tmp")
    try:
        yield tmp
        if rename:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` whole (``replaced_whole``; the temp file named by this process, as several
    processes write sweep.json)."""
    with replaced_whole(path, path.with_name(f".{path.name}.{os.getpid()}.tmp")) as tmp:
        tmp.write_text(json.dumps(_plain(data), indent=2, sort_keys=False) + "\n")


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    """A run's metrics.json, or None when it has none yet; ValueError when it is not a record train.py writes
    (not JSON, not an object, no status, a metric that is no number), so that it is reported as unreadable
    rather than read as a run with no results."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if why := record_problem(record):
        raise ValueError(why)
    return record


# The sections of metrics.json that hold metric values, and the strings _plain writes for non-finite ones.
METRIC_SECTIONS = ("final", "best", "test")
NON_FINITE = ("nan", "inf", "-inf")


def record_problem(record: Any) -> str | None:
    """Why ``record`` (a parsed metrics.json) is not one train.py writes; None when it is."""
    if not isinstance(record, dict):
        return f"it holds a JSON {type(record).__name__}, not an object"
    if not isinstance(record.get("status"), str):
        return "it has no status"
    for section in METRIC_SECTIONS:
        values = record.get(section)
        if values is None:
            continue
        if not isinstance(values, dict):
            return f"its {section} is not an object of metrics"
        for key, value in values.items():
            if not _is_metric(value):
                return f"its {section} metric {key} is {value!r}, not a number"
    return None


def _is_metric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return value is None or isinstance(value, (int, float)) or (isinstance(value, str) and value.lower() in NON_FINITE)


# What a run that starts over would overwrite besides metrics.json: set aside with it, under the same suffix.
SET_ASIDE_WITH_METRICS = (HISTORY_FILE, "checkpoints")


def set_aside_unreadable(run_dir: Path) -> Path | None:
    """Rename a metrics.json that is not valid JSON to ``metrics.json.unreadable-<time>`` (never deleted: it may
    be the only record of a result), so the job can run again and record itself; the new name, or None.
    The run's history.csv and checkpoints/ get the same suffix: the run starts over, and would otherwise
    overwrite the only other record of the earlier attempt without a word."""
    path = Path(run_dir) / METRICS_FILE
    try:
        read_metrics(run_dir)
        return None
    except (OSError, ValueError):
        suffix = f".unreadable-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        moved = path.with_name(METRICS_FILE + suffix)
        path.replace(moved)
        for name in SET_ASIDE_WITH_METRICS:
            if (Path(run_dir) / name).exists():
                (Path(run_dir) / name).replace(Path(run_dir) / (name + suffix))
        return moved


def _plain(value: Any) -> Any:
    """JSON-safe: tensors and numpy scalars to floats, NaN/Inf to strings JSON can hold."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def print_summary(metrics: dict[str, Any]) -> None:
    """The closing table: status, test accuracy, best val accuracy, epochs, wall time and run dir."""
    from rich.console import Console
    from rich.table import Table

    best = metrics.get("best", {})
    rows = [
        ("status", metrics["status"]),
        ("test accuracy", _fmt(metrics.get("test", {}).get("test/acc"))),
        ("test loss", _fmt(metrics.get("test", {}).get("test/loss"))),
        ("best val accuracy", f"{_fmt(best.get('val/acc'))} (epoch {best.get('val/acc_epoch', '-')})"),
        ("parameters", f"{metrics['params']:,}" if "params" in metrics else "-"),
        ("epochs", str(metrics.get("epochs", "-"))),
        ("wall time", f"{metrics.get('wall_time_s', 0):.1f} s"),
        ("run dir", str(metrics.get("run_dir", ""))),
    ]
    table = Table(title=f"tricklab · {metrics.get('name', '')}", show_header=False)
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
