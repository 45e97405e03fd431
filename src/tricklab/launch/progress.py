"""What a sweep shows while it runs: one line per finished job and, on a terminal, a live status line below them.

    [3/8] #2 completed in 12.4 s · best val/acc 0.8123 · init=he seed=1 · ETA 25 s
    sweep 3/8 done · 2 running · 1 failed · 2 pending · ETA 25 s · last: init=he seed=1 best val/acc 0.8123

The ETA is the work left, pending jobs at the mean duration of this launch's finished ones and running jobs at
what that mean leaves of them, shared by the workers. The metric is the job's return value (its best val/acc,
``tricklab.run.job.objective``). Piped output gets the finished-job lines only: a redrawn line would fill a log
file with escape codes.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

METRIC = "best val/acc"  # what tricklab.run.job.objective returns, and so every job's return value


class SweepProgress:
    """Counts of a launch's jobs by state, the durations of the finished ones and the last one's value."""

    def __init__(self, total: int, earlier: int, workers: int) -> None:
        self.total, self.earlier, self.workers = total, earlier, max(workers, 1)
        self.running: dict[int, float] = {}  # job number -> when it started
        self.durations: list[float] = []
        self.failed = 0
        self.last: tuple[str, Any] | None = None  # the last finished job's overrides and return value

    @property
    def done(self) -> int:
        """Jobs finished, with those an earlier launch of the sweep finished."""
        return self.earlier + len(self.durations)

    @property
    def pending(self) -> int:
        return self.total - self.done - len(self.running)

    def started(self, num: int) -> None:
        self.running[num] = time.monotonic()

    def finished(self, num: int, overrides: str, status: str, value: Any) -> str:
        """Job ``num`` ended with ``status`` (a failed one counts as done too: it will not run again now); its line."""
        seconds = time.monotonic() - self.running.pop(num, time.monotonic())
        self.durations.append(seconds)
        self.failed += status == "failed"
        self.last = (overrides, value)
        eta = self.eta_s() if self.pending or self.running else None
        return (f"[{self.done}/{self.total}] #{num} {status} in {seconds:.1f} s · {METRIC} {_value(value)} · "
                f"{overrides}" + (f" · ETA {_duration(eta)}" if eta is not None else ""))

    def eta_s(self) -> float | None:
        """Seconds until the launch's last job ends, from the finished jobs' mean duration; None before any ends."""
        if not self.durations:
            return None
        mean, now = sum(self.durations) / len(self.durations), time.monotonic()
        left = self.pending * mean + sum(max(mean - (now - began), 0.0) for began in self.running.values())
        return left / self.workers

    def line(self) -> str:
        """The sweep's status in one line."""
        eta = self.eta_s()
        last = f" · last: {self.last[0]} {METRIC} {_value(self.last[1])}" if self.last else ""
        return (f"sweep {self.done}/{self.total} done · {len(self.running)} running · {self.failed} failed · "
                f"{self.pending} pending · ETA {'—' if eta is None else _duration(eta)}{last}")

    def __rich__(self) -> str:
        """What rich's Live redraws, a few times a second (so the ETA counts down between jobs)."""
        return self.line()


@contextlib.contextmanager
def shown(progress: SweepProgress, out: TextIO | None = None) -> Iterator[None]:
    """Keep ``progress.line()`` redrawn at the foot of a terminal while the block runs, logging's lines printed
    above it; nothing on piped output (each finished job's line is the record there)."""
    out = out or sys.stdout
    if not out.isatty():
        yield
        return
    from rich.console import Console
    from rich.live import Live

    live = Live(progress, console=Console(file=out, highlight=False), refresh_per_second=2, transient=True)
    with live, _logging_to(sys.stdout):
        yield  # inside Live, sys.stdout is rich's proxy: what is written there goes above the live line


@contextlib.contextmanager
def _logging_to(stream: TextIO) -> Iterator[None]:
    """Point the logging handlers that write to the real stdout at ``stream`` while the block runs (they took
    sys.stdout when Hydra configured them, before rich replaced it)."""
    handlers = [h for h in logging.root.handlers if isinstance(h, logging.StreamHandler)
                and h.stream in (sys.__stdout__, getattr(stream, "rich_proxied_file", None))]
    old = [h.setStream(stream) for h in handlers]
    try:
        yield
    finally:
        for handler, previous in zip(handlers, old, strict=True):
            handler.setStream(previous)


def _value(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "—"


def _duration(seconds: float) -> str:
    """"42 s", "3 min 5 s", "2 h 10 min"."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
