"""How this process was started, as a user would type it again: the words before the overrides in the resume
hint and in sweep.json's and search.json's commands (``python train.py`` in a checkout, ``tricklab train`` or
``python -m tricklab.train`` for an installed tricklab)."""

from __future__ import annotations

import sys
from pathlib import Path

_entry: list[str] = []  # set by an entry point that rewrites sys.argv (``tricklab train``)


def set_entry(words: list[str]) -> None:
    """This process was started as ``words`` followed by ``sys.argv[1:]``."""
    _entry[:] = words


def launch_words() -> list[str]:
    """The command that started this process, without its arguments."""
    if _entry:
        return list(_entry)
    script = sys.argv[0] if sys.argv and sys.argv[0] else "train.py"
    if Path(script).resolve() == Path(__file__).with_name("train.py").resolve():  # python -m tricklab.train
        return ["python", "-m", "tricklab.train"]
    return ["python", script]


def command_line(args: list[str] | None = None) -> list[str]:
    """The whole command: ``launch_words()`` and ``args`` (default: this process's arguments)."""
    return [*launch_words(), *(sys.argv[1:] if args is None else args)]
