"""Stopping cleanly: SIGTERM (what ``kill``, systemd, SLURM and container runtimes send) is handled as Ctrl-C
is, and sweep workers never outlive their launcher.

Lightning turns a SIGTERM during ``fit`` into a SystemExit with code 0, and outside ``fit`` the default action
kills the process before metrics.json says ``interrupted``. Raising KeyboardInterrupt instead takes the path
Ctrl-C takes (the run records ``interrupted``, a sweep marks its jobs and prints its summary); the process then
exits as shells expect: 143 after SIGTERM (128 + 15), 130 after Ctrl-C, with no traceback.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Iterator

PR_SET_PDEATHSIG = 1  # linux/prctl.h
EXIT_SIGTERM = 128 + signal.SIGTERM


class _Stopped:
    """The signal (SIGTERM or SIGINT) that stopped this process, once one has."""

    signum: int | None = None


def stopped_by() -> int | None:
    """The signal that stopped this process (SIGTERM or SIGINT), or None."""
    return _Stopped.signum


def raise_interrupt_on_sigterm() -> None:
    """From now on, SIGTERM raises KeyboardInterrupt in the main thread, as SIGINT does; either is remembered."""

    def handler(signum, frame) -> None:
        _Stopped.signum = signum
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@contextlib.contextmanager
def exit_like_a_shell() -> Iterator[None]:
    """Run the block with SIGTERM as Ctrl-C; an interrupted block exits 143 (SIGTERM) or 130 (Ctrl-C)."""
    raise_interrupt_on_sigterm()
    try:
        yield
    except KeyboardInterrupt:
        _exit_stopped(_Stopped.signum or signal.SIGINT)
    except SystemExit as exit_:
        if _Stopped.signum is not None:  # Lightning leaves fit on a signal with a SystemExit of its own (0 or 1)
            _exit_stopped(_Stopped.signum)
        raise exit_ from None


def _exit_stopped(signum: int) -> None:
    print(f"tricklab: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
    sys.exit(128 + signum)


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to send this process SIGTERM when its parent dies (PR_SET_PDEATHSIG), so a worker never trains
    on as an orphan after its launcher was killed; exit now if the parent is already gone. No-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return  # not allowed here (some sandboxes): the worker still notices a closed pipe between jobs
    if os.getppid() != parent_pid:  # the launcher died before prctl took effect
        sys.exit(EXIT_SIGTERM)
